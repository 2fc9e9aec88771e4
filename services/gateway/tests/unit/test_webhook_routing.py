"""Webhook routing and trust with fakes for JetStream: the app-level Meta URL, identity checks,
flood limiting after authentication, the claim check for large bodies, scrubbed secrets."""

import base64
import hashlib
import hmac
import json
from types import SimpleNamespace
from typing import Any

from zapflow.gateway.cache import ChannelCache, WebhookChannel
from zapflow.gateway.ratelimit import FailureGuard, FloodGuard
from zapflow.gateway.webhooks import WebhookEndpoints
from zapflow.providers.base import ChannelSecrets
from zapflow.providers.registry import get_adapter

NUMBER_A, NUMBER_B, NUMBER_X = "109876543210987", "200000000000002", "300000000000003"


class FakeJetStream:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    async def request(self, subject: str, payload: bytes, **options: Any) -> Any:
        self.published.append((subject, json.loads(payload), options["headers"]))
        return SimpleNamespace(data=b'{"stream":"ZF_INBOUND","seq":1}')

    def subjects(self) -> list[str]:
        return [subject for subject, _, _ in self.published]


class FakeBodies:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, name: str, body: bytes) -> None:
        self.objects[name] = body


def channel(
    channel_id: str, provider: str = "meta", account: str | None = None, **secrets: str
) -> WebhookChannel:
    return WebhookChannel(
        tenant_id="acme",
        channel_id=channel_id,
        provider=provider,
        enabled=True,
        adapter=get_adapter(provider),
        secrets=ChannelSecrets(**secrets),
        subject=f"zf.inbound.webhook_received.v1.acme.{channel_id}",
        version=1,
        account=account,
    )


async def endpoints(
    js: FakeJetStream, *entries: WebhookChannel, burst: int = 100, **options: Any
) -> WebhookEndpoints:
    async def load_all() -> list[WebhookChannel]:
        return list(entries)

    async def load_one(_: str) -> None:
        return None

    cache = ChannelCache(load_all, load_one)
    await cache.reload()
    options.setdefault("failures", FailureGuard(0.001, 5))
    return WebhookEndpoints(
        cache,
        FloodGuard(0.001, burst),
        js,  # type: ignore[arg-type]
        max_body_bytes=64 * 1024,
        publish_timeout_s=1.0,
        **options,
    )


async def call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: bytes = b"",
    client: str = "198.51.100.7",
) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "client": (client, 40000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    await app(scope, receive, send)
    start, end = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, end["body"]


def signed(body: bytes, secret: str = "s") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def change(number: str, wamid: str) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511999990000", "phone_number_id": number},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511999990001"}],
        "messages": [
            {
                "from": "5511999990001",
                "id": wamid,
                "timestamp": "1763647200",
                "type": "text",
                "text": {"body": "oi"},
            }
        ],
    }
    return {"field": "messages", "value": value}


def meta_body(*changes: dict[str, Any]) -> bytes:
    entry = {"id": "WABA", "changes": list(changes)}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


def event_body(event: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(event["body_b64"]))


# -- the app-level Meta URL -------------------------------------------------------------------


async def test_a_batch_for_two_numbers_lands_on_two_channels() -> None:
    js = FakeJetStream()
    app = await endpoints(
        js,
        channel("a", account=NUMBER_A, app_secret="s"),
        channel("b", account=NUMBER_B, app_secret="s"),
    )
    body = meta_body(change(NUMBER_A, "wamid.A"), change(NUMBER_B, "wamid.B"))
    status, _, answer = await call(app, "POST", "/webhooks/meta", body, signed(body))
    assert status == 200, answer
    assert sorted(js.subjects()) == [
        "zf.inbound.webhook_received.v1.acme.a",
        "zf.inbound.webhook_received.v1.acme.b",
    ]
    for subject, event, headers in js.published:
        part = event_body(event)
        (entry,) = part["entry"]
        (only,) = entry["changes"]
        expected = NUMBER_A if subject.endswith(".a") else NUMBER_B
        assert only["value"]["metadata"]["phone_number_id"] == expected
        assert headers["Nats-Msg-Id"] == event["id"]
    assert sorted(json.loads(answer)["ids"]) == sorted(e["id"] for _, e, _ in js.published)
    # Meta retries the same batch: the same event ids, so it is stored once
    await call(app, "POST", "/webhooks/meta", body, signed(body))
    first, second = js.published[:2], js.published[2:]
    assert sorted(e["id"] for _, e, _ in first) == sorted(e["id"] for _, e, _ in second)


async def test_one_channel_body_is_stored_byte_for_byte() -> None:
    js = FakeJetStream()
    app = await endpoints(js, channel("a", account=NUMBER_A, app_secret="s"))
    body = meta_body(change(NUMBER_A, "wamid.A"))
    assert (await call(app, "POST", "/webhooks/meta", body, signed(body)))[0] == 200
    ((_, event, _),) = js.published
    assert base64.b64decode(event["body_b64"]) == body


async def test_unknown_numbers_are_404_alone_and_listed_beside_known_ones() -> None:
    js = FakeJetStream()
    app = await endpoints(js, channel("a", account=NUMBER_A, app_secret="s"))
    body = meta_body(change(NUMBER_X, "wamid.X"))
    status, _, answer = await call(app, "POST", "/webhooks/meta", body, signed(body))
    assert (status, json.loads(answer)) == (404, {"error": "unknown phone_number_id"})
    assert js.published == []
    body = meta_body(change(NUMBER_A, "wamid.A"), change(NUMBER_X, "wamid.X"))
    status, _, answer = await call(app, "POST", "/webhooks/meta", body, signed(body))
    assert (status, json.loads(answer)["unrouted"]) == (200, [NUMBER_X])
    ((subject, event, _),) = js.published
    assert subject.endswith(".a")
    assert "wamid.X" not in json.dumps(event_body(event))


async def test_every_routed_channel_must_verify_the_signature() -> None:
    js = FakeJetStream()
    app = await endpoints(
        js,
        channel("a", account=NUMBER_A, app_secret="s"),
        channel("b", account=NUMBER_B, app_secret="other-app"),
    )
    body = meta_body(change(NUMBER_A, "wamid.A"), change(NUMBER_B, "wamid.B"))
    status, _, _ = await call(app, "POST", "/webhooks/meta", body, signed(body))
    assert status == 401
    assert js.published == []


async def test_app_level_handshake_takes_any_meta_channels_verify_token() -> None:
    app = await endpoints(
        FakeJetStream(), channel("a", account=NUMBER_A, app_secret="s", verify_token="vt")
    )
    ok = b"hub.mode=subscribe&hub.verify_token=vt&hub.challenge=42"
    assert (await call(app, "GET", "/webhooks/meta", query=ok))[::2] == (200, b"42")
    bad = b"hub.mode=subscribe&hub.verify_token=nope&hub.challenge=42"
    assert (await call(app, "GET", "/webhooks/meta", query=bad))[0] == 403


# -- per-channel URLs: identity -----------------------------------------------------------------


async def test_a_channel_url_refuses_another_numbers_payload() -> None:
    js = FakeJetStream()
    app = await endpoints(
        js, channel("a", account=NUMBER_A, app_secret="s"), channel("legacy", app_secret="s")
    )
    other = meta_body(change(NUMBER_B, "wamid.B"))
    status, _, answer = await call(app, "POST", "/webhooks/meta/a", other, signed(other))
    assert (status, json.loads(answer)) == (403, {"error": "payload is for another channel"})
    mixed = meta_body(change(NUMBER_A, "wamid.A"), change(NUMBER_B, "wamid.B"))
    assert (await call(app, "POST", "/webhooks/meta/a", mixed, signed(mixed)))[0] == 403
    assert js.published == []
    own = meta_body(change(NUMBER_A, "wamid.A"))
    assert (await call(app, "POST", "/webhooks/meta/a", own, signed(own)))[0] == 200
    # a channel without a registered account cannot tell: stored as before
    assert (await call(app, "POST", "/webhooks/meta/legacy", other, signed(other)))[0] == 200


async def test_evolution_instance_must_be_the_channels(fixture_bytes: Any) -> None:
    js = FakeJetStream()
    app = await endpoints(
        js,
        channel("evo", "evolution", account="loja-centro", path_token="t"),
        channel("evo2", "evolution", account="vendas", path_token="t"),
    )
    body = fixture_bytes("evolution", "inbound_text.json")
    assert (await call(app, "POST", "/webhooks/evolution/evo2", body, query=b"token=t"))[0] == 403
    status, _, _ = await call(app, "POST", "/webhooks/evolution/evo", body, query=b"token=t")
    assert status == 200
    ((_, event, _),) = js.published
    stored = base64.b64decode(event["body_b64"])
    apikey = json.loads(body)["apikey"]
    assert apikey.encode() not in stored  # scrubbed before it was stored
    assert json.loads(stored)["apikey"] == "[scrubbed]"


# -- flood limit after authentication -----------------------------------------------------------


async def test_unsigned_junk_does_not_spend_the_channels_budget() -> None:
    js = FakeJetStream()
    app = await endpoints(
        js,
        channel("a", account=NUMBER_A, app_secret="s"),
        burst=1,
        failures=FailureGuard(0.001, 1000),
    )
    body = meta_body(change(NUMBER_A, "wamid.A"))
    for _ in range(20):
        junk = {"X-Hub-Signature-256": "sha256=00"}
        assert (await call(app, "POST", "/webhooks/meta/a", body, junk, client="203.0.113.9"))[
            0
        ] == 401
    assert (await call(app, "POST", "/webhooks/meta/a", body, signed(body)))[0] == 200


async def test_a_source_that_keeps_failing_is_limited_before_any_work() -> None:
    js = FakeJetStream()
    app = await endpoints(js, channel("z", "zapi", path_token="t"), failures=FailureGuard(0.001, 3))
    for _ in range(3):
        assert (await call(app, "POST", "/webhooks/zapi/nope", b"{}"))[0] == 404

    async def never(*_: Any) -> Any:
        raise AssertionError("the body of a limited source is not read")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/zapi/z",
        "query_string": b"",
        "client": ("198.51.100.7", 1),
        "headers": [],
    }
    await app(scope, never, send)
    assert sent[0]["status"] == 429
    assert dict(sent[0]["headers"])[b"retry-after"]
    body = b'{"type":"ReceivedCallback"}'  # another source is served
    assert (
        await call(app, "POST", "/webhooks/zapi/z", body, query=b"token=t", client="192.0.2.1")
    )[0] == 200


async def test_a_wrong_path_token_is_refused_before_the_body_is_read() -> None:
    app = await endpoints(FakeJetStream(), channel("z", "zapi", path_token="t"))
    sent: list[dict[str, Any]] = []

    async def never() -> Any:
        raise AssertionError("body read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/zapi/z",
        "query_string": b"token=wrong",
        "client": ("192.0.2.1", 1),
        "headers": [],
    }
    await app(scope, never, send)
    assert sent[0]["status"] == 401


async def test_the_client_address_comes_from_the_proxy_header_when_configured() -> None:
    app = await endpoints(
        FakeJetStream(),
        channel("z", "zapi", path_token="t"),
        failures=FailureGuard(0.001, 1),
        client_ip_header="X-Forwarded-For",
    )
    spoofed = {"X-Forwarded-For": "10.9.9.9, 203.0.113.5"}
    assert (await call(app, "POST", "/webhooks/zapi/x", b"{}", spoofed))[0] == 404
    assert (await call(app, "POST", "/webhooks/zapi/x", b"{}", spoofed))[0] == 429
    other = {"X-Forwarded-For": "10.9.9.9, 203.0.113.6"}  # same proxy, other client
    assert (await call(app, "POST", "/webhooks/zapi/x", b"{}", other))[0] == 404


# -- claim check ----------------------------------------------------------------------------------


async def test_a_large_body_goes_to_the_object_store_and_the_event_names_it() -> None:
    js, bodies = FakeJetStream(), FakeBodies()
    app = await endpoints(
        js, channel("a", account=NUMBER_A, app_secret="s"), bodies=bodies, inline_max_bytes=512
    )
    body = meta_body(*(change(NUMBER_A, f"wamid.{i}") for i in range(20)))
    assert len(body) > 512
    status, _, _ = await call(app, "POST", "/webhooks/meta/a", body, signed(body))
    assert status == 200
    ((_, event, _),) = js.published
    assert (event["body_b64"], event["body_size"]) == ("", len(body))
    assert bodies.objects == {event["body_ref"]: body}
    assert event["body_ref"] == event["id"]
    small = (
        meta_body(change(NUMBER_A, "wamid.s"))[:0]
        or b'{"object":"whatsapp_business_account","entry":[]}'
    )
    assert (await call(app, "POST", "/webhooks/meta/a", small, signed(small)))[0] == 200
    assert js.published[-1][1]["body_ref"] is None


async def test_without_a_body_store_a_large_body_is_not_stored_and_retried() -> None:
    js = FakeJetStream()
    app = await endpoints(js, channel("a", account=NUMBER_A, app_secret="s"), inline_max_bytes=16)
    body = meta_body(change(NUMBER_A, "wamid.A"))
    status, headers, _ = await call(app, "POST", "/webhooks/meta/a", body, signed(body))
    assert (status, headers["retry-after"]) == (503, "1")
    assert js.published == []
