"""The webhook ASGI app with fakes for JetStream: answers that need no real server."""

import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any

import pytest
from nats.errors import TimeoutError as NatsTimeoutError

from zapflow.gateway.cache import ChannelCache, WebhookChannel
from zapflow.gateway.ratelimit import FloodGuard
from zapflow.gateway.webhooks import WebhookEndpoints
from zapflow.providers.base import ChannelSecrets
from zapflow.providers.registry import get_adapter

BODY = b'{"object":"whatsapp_business_account","entry":[]}'
SIGNATURE = "sha256=" + hmac.new(b"s", BODY, hashlib.sha256).hexdigest()


class FakeJetStream:
    """A NATS client whose requests JetStream acknowledges (or answers ``ack``)."""

    def __init__(self, error: Exception | None = None, ack: bytes | None = None) -> None:
        self.error = error
        self.ack = ack or b'{"stream":"ZF_INBOUND","seq":1}'
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def request(self, subject: str, payload: bytes, **options: Any) -> Any:
        if self.error is not None:
            raise self.error
        self.published.append((subject, payload, options["headers"]))
        return SimpleNamespace(data=self.ack)


def channel(channel_id: str, provider: str = "meta", **secrets: str | None) -> WebhookChannel:
    return WebhookChannel(
        tenant_id="acme",
        channel_id=channel_id,
        provider=provider,
        enabled=True,
        adapter=get_adapter(provider),
        secrets=ChannelSecrets(**secrets) if secrets else None,
        subject=f"zf.inbound.webhook_received.v1.acme.{channel_id}",
        version=1,
    )


async def endpoints(js: FakeJetStream, *entries: WebhookChannel, burst: int = 100) -> Any:
    async def load_all() -> list[WebhookChannel]:
        return list(entries)

    async def load_one(_: str) -> None:
        return None

    cache = ChannelCache(load_all, load_one)
    await cache.reload()
    return WebhookEndpoints(
        cache, FloodGuard(1.0, burst), js, max_body_bytes=1024, publish_timeout_s=1.0
    )


async def call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: bytes = b"",
    chunks: int = 1,
) -> tuple[int, dict[str, str], bytes]:
    size = len(body) // chunks + 1
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await app(scope, receive, send)
    start, end = sent
    got = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], got, end["body"]


async def test_a_jetstream_failure_answers_503_so_the_provider_retries() -> None:
    js = FakeJetStream(NatsTimeoutError())
    app = await endpoints(js, channel("ch", app_secret="s"))
    status, headers, body = await call(
        app, "POST", "/webhooks/meta/ch", BODY, {"X-Hub-Signature-256": SIGNATURE}
    )
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(body) == {"error": "not stored, retry"}


async def test_a_refused_publish_answers_503_too() -> None:
    refused = b'{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}'
    app = await endpoints(FakeJetStream(ack=refused), channel("ch", app_secret="s"))
    status, _, _ = await call(
        app, "POST", "/webhooks/meta/ch", BODY, {"X-Hub-Signature-256": SIGNATURE}
    )
    assert status == 503


async def test_stored_events_carry_the_envelope_headers_and_no_secret_query() -> None:
    js = FakeJetStream()
    app = await endpoints(js, channel("ch", "zapi", path_token="tok"))
    zapi_body = b'{"type":"ReceivedCallback"}'
    status, _, body = await call(
        app, "POST", "/webhooks/zapi/ch", zapi_body, {}, query=b"token=tok&event=received"
    )
    assert status == 200, body
    [(subject, payload, headers)] = js.published
    event = json.loads(payload)
    assert subject == "zf.inbound.webhook_received.v1.acme.ch"
    assert headers["Nats-Msg-Id"] == event["id"] == json.loads(body)["id"]
    assert headers["Zf-Tenant"] == "acme"
    assert headers["Zf-Type"] == event["type"]
    assert event["query"] == {"event": "received"}


async def test_channels_whose_secrets_do_not_open_answer_503() -> None:
    app = await endpoints(FakeJetStream(), channel("ch"))
    status, _, _ = await call(app, "POST", "/webhooks/meta/ch", BODY)
    assert status == 503


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/webhooks/zapi", 404),
        ("PUT", "/webhooks/meta", 405),
        ("POST", "/webhooks/meta/ch/extra", 404),
        ("POST", "/webhooks/meta/", 404),
        ("PUT", "/webhooks/meta/ch", 405),
        ("GET", "/webhooks/zapi/ch", 405),
    ],
)
async def test_other_paths_and_methods(method: str, path: str, status: int) -> None:
    app = await endpoints(FakeJetStream(), channel("ch", app_secret="s"))
    assert (await call(app, method, path))[0] == status


async def test_a_body_growing_past_the_limit_while_streamed_is_refused() -> None:
    js = FakeJetStream()
    app = await endpoints(js, channel("ch", app_secret="s"))
    status, _, _ = await call(app, "POST", "/webhooks/meta/ch", b"x" * 2000, chunks=4)
    assert status == 413
    assert js.published == []


async def test_the_flood_limit_answers_429_with_retry_after() -> None:
    app = await endpoints(FakeJetStream(), channel("ch", app_secret="s"), burst=1)
    headers = {"X-Hub-Signature-256": SIGNATURE}
    assert (await call(app, "POST", "/webhooks/meta/ch", BODY, headers))[0] == 200
    status, got, _ = await call(app, "POST", "/webhooks/meta/ch", BODY, headers)
    assert status == 429
    assert got["retry-after"] == "1"


async def test_an_unexpected_error_is_a_500_with_the_usual_shape() -> None:
    class Broken:
        def take(self, _: str) -> float:
            raise RuntimeError("bug")

    app = await endpoints(FakeJetStream(), channel("ch", app_secret="s"))
    app._guard = Broken()
    headers = {"X-Hub-Signature-256": SIGNATURE}
    status, _, body = await call(app, "POST", "/webhooks/meta/ch", BODY, headers)
    assert (status, json.loads(body)) == (500, {"error": "internal error"})
