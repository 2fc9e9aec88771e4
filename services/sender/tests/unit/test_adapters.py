"""Edges of the sender: contract content to provider content, the HTTP transport, the
credentials cache and the channel replay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import uuid4

import httpx
import pytest

from zapflow.contracts.channels.v1 import (
    ChannelDisabled,
    ChannelRegistered,
    ChannelSettings,
    ChannelUpdated,
    PaceSettings,
)
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import (
    InteractiveContent,
    ListRow,
    ListSection,
    MediaContent,
    MediaType,
    ReplyButton,
    TemplateButtonParameter,
    TemplateContent,
    TextContent,
)
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.sending.v1 import FailureReason, Recipient, SendRequest
from zapflow.embedded import free_port
from zapflow.providers import get_adapter
from zapflow.providers.errors import (
    InvalidRecipientError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    RequestNotAllowedError,
    TemplateError,
    UnsupportedContentError,
)
from zapflow.runtime.egress import LOOPBACK_ALLOWANCE, EgressPolicy, EgressRefused
from zapflow.sender.adapters.channels import ChannelReplay
from zapflow.sender.adapters.http import BEFORE_WRITE, LeanClient, LeanTransport
from zapflow.sender.adapters.provider import (
    ProviderCalls,
    channel_config,
    error_kind,
    failure_reason,
    outbound_content,
)
from zapflow.sender.domain import ErrorKind

# -- content -------------------------------------------------------------------------------


def request(content: object, **kw: object) -> SendRequest:
    return SendRequest(
        message_id=uuid4(),
        channel_id="c1",
        to=Recipient(phone="+5511999990001"),
        content=content,  # type: ignore[arg-type]
        origin=SendOrigin.API,
        idempotency_key="k",
        **kw,  # type: ignore[arg-type]
    )


def settings(provider: str = "meta", **kw: object) -> ChannelSettings:
    return ChannelSettings(
        channel_id="c1",
        provider=provider,
        provider_account="1098",
        base_url="http://127.0.0.1:1/v21.0",
        pace=PaceSettings(rate_per_second=80),
        **kw,  # type: ignore[arg-type]
    )


def meta_body(content: object, **kw: object) -> dict[str, object]:
    creds = ChannelCredentialsReply(found=True, credentials={"access_token": "t"})
    channel = channel_config(settings(), creds)
    spec = get_adapter("meta").build_send_request(
        outbound_content(request(content, **kw), "meta"), channel
    )
    assert spec.url == "http://127.0.0.1:1/v21.0/1098/messages"
    assert spec.json is not None
    return dict(spec.json)


def test_text_with_reply_to() -> None:
    body = meta_body(TextContent(body="oi", preview_url=True), reply_to="wamid.Q")
    assert body["text"] == {"preview_url": True, "body": "oi"}
    assert body["context"] == {"message_id": "wamid.Q"}
    assert body["to"] == "5511999990001"


def test_media_by_link_or_provider_id() -> None:
    image = meta_body(MediaContent(media_type=MediaType.IMAGE, url="https://x/a.jpg", caption="c"))
    assert image["image"] == {"link": "https://x/a.jpg", "caption": "c"}
    doc = MediaContent(media_type=MediaType.DOCUMENT, provider_media_id="m1", filename="a.pdf")
    assert meta_body(doc)["document"] == {"id": "m1", "filename": "a.pdf"}
    with pytest.raises(UnsupportedContentError):
        meta_body(MediaContent(media_type=MediaType.IMAGE, stored_key="k"))


def test_template_components_in_meta_shape() -> None:
    template = TemplateContent(
        name="pedido",
        language="pt_BR",
        header_params=("Ana",),
        body_params=("123", "amanhã"),
        named_params={"loja": "Centro"},
        buttons=(
            TemplateButtonParameter(index=0, sub_type="quick_reply", value="SIM"),
            TemplateButtonParameter(index=1, sub_type="url", value="abc"),
        ),
    )
    body = meta_body(template)["template"]
    assert isinstance(body, dict)
    assert body["name"] == "pedido"
    assert body["language"] == {"code": "pt_BR"}
    assert body["components"] == [
        {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "123"},
                {"type": "text", "text": "amanhã"},
                {"type": "text", "parameter_name": "loja", "text": "Centro"},
            ],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "SIM"}],
        },
        {
            "type": "button",
            "sub_type": "url",
            "index": "1",
            "parameters": [{"type": "text", "text": "abc"}],
        },
    ]


def test_interactive_buttons_and_lists() -> None:
    buttons = InteractiveContent(
        style="buttons", body="Escolha", buttons=(ReplyButton(id="1", title="Sim"),)
    )
    assert meta_body(buttons)["interactive"] == {
        "type": "button",
        "body": {"text": "Escolha"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "1", "title": "Sim"}}]},
    }
    listing = InteractiveContent(
        style="list",
        body="Menu",
        list_button="Ver",
        sections=(ListSection(title="A", rows=(ListRow(id="r1", title="Um"),)),),
    )
    action = meta_body(listing)["interactive"]
    assert isinstance(action, dict)
    assert action["action"] == {
        "button": "Ver",
        "sections": [{"title": "A", "rows": [{"id": "r1", "title": "Um"}]}],
    }


def test_a_rendered_template_goes_as_text_where_templates_do_not_exist() -> None:
    content = outbound_content(
        request(TemplateContent(name="t", language="pt_BR", rendered_text="Olá Ana")), "zapi"
    )
    assert content.text == "Olá Ana"
    assert content.client_message_id is not None


def test_simulator_channels_speak_meta_and_the_account_fills_the_adapter_credential() -> None:
    creds = ChannelCredentialsReply(found=True, credentials={"access_token": "t"})
    config = channel_config(settings("simulator"), creds)
    assert (config.provider, config.credentials["phone_number_id"]) == ("meta", "1098")
    evolution = channel_config(settings("evolution"), creds)
    assert evolution.credentials["instance"] == "1098"


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (
            RateLimitedError("x", code="130429"),
            ErrorKind.CHANNEL_RATE_LIMIT,
            FailureReason.RATE_LIMITED,
        ),
        (
            RateLimitedError("x", code="131056"),
            ErrorKind.RECIPIENT_RATE_LIMIT,
            FailureReason.RATE_LIMITED,
        ),
        (ProviderTimeoutError("x"), ErrorKind.TRANSIENT, FailureReason.PROVIDER_UNAVAILABLE),
        (ProviderUnavailableError("x"), ErrorKind.TRANSIENT, FailureReason.PROVIDER_UNAVAILABLE),
        (InvalidRecipientError("x"), ErrorKind.PERMANENT, FailureReason.INVALID_RECIPIENT),
        (TemplateError("x"), ErrorKind.PERMANENT, FailureReason.TEMPLATE_MISMATCH),
    ],
)
def test_errors_map_to_retry_kinds_and_reasons(
    error: Exception, kind: ErrorKind, reason: FailureReason
) -> None:
    assert error_kind(error) is kind  # type: ignore[arg-type]
    assert failure_reason(error) is reason  # type: ignore[arg-type]


# -- the HTTP transport ----------------------------------------------------------------------

LOCAL = EgressPolicy.parse(LOOPBACK_ALLOWANCE)
"""The allowance local runs and tests configure: the fake provider servers on loopback."""


@asynccontextmanager
async def http_server(
    respond: Callable[[bytes], bytes | None], connections: list[int] | None = None
) -> AsyncIterator[str]:
    """Answers each request head+body with ``respond(request)`` (None: close the connection);
    appends to ``connections`` once per connection accepted."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if connections is not None:
            connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                data = head + await reader.readexactly(length)
                answer = respond(data)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_keep_alive_requests_reuse_one_connection_and_send_the_body() -> None:
    seen: list[bytes] = []
    connections: list[int] = []

    def respond(data: bytes) -> bytes:
        seen.append(data)
        return ok(b'{"n": %d}' % len(seen))

    async with (
        http_server(respond, connections) as url,
        httpx.AsyncClient(transport=LeanTransport(egress=LOCAL)) as client,
    ):
        for i in range(3):
            answer = await client.post(f"{url}/v21.0/1/messages", json={"i": i})
            assert answer.json() == {"n": i + 1}
    assert len(connections) == 1
    assert b"POST /v21.0/1/messages HTTP/1.1" in seen[0]
    assert seen[2].endswith(b'{"i":2}')
    assert b"Accept-Encoding: identity" in seen[0]


async def test_chunked_and_connection_close_answers() -> None:
    def respond(data: bytes) -> bytes:
        return (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b'5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
        )

    async with (
        http_server(respond) as url,
        httpx.AsyncClient(transport=LeanTransport(egress=LOCAL)) as client,
    ):
        first = await client.post(url + "/x", json={})
        second = await client.post(url + "/x", json={})  # a new connection after the close
    assert first.status_code == second.status_code == 400
    assert first.json() == {"a": 1}


async def test_timeouts_and_refused_connections_are_httpx_errors() -> None:
    async with http_server(lambda _: None) as url:
        transport = LeanTransport(egress=LOCAL)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ReadError):
                await client.post(url + "/x", json={})
    async with httpx.AsyncClient(transport=LeanTransport(egress=LOCAL), timeout=0.2) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(url + "/x", json={})

    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await done.wait()
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with (
        server,
        httpx.AsyncClient(transport=LeanTransport(egress=LOCAL), timeout=0.2) as client,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"http://127.0.0.1:{port}/x", json={})
        done.set()
        await asyncio.sleep(0.05)


async def test_the_gate_runs_right_before_the_request_is_written() -> None:
    events: list[str] = []

    def respond(data: bytes) -> bytes:
        events.append("received")
        return ok(b"{}")

    async def gate() -> None:
        events.append("gate")

    async with (
        http_server(respond) as url,
        httpx.AsyncClient(transport=LeanTransport(egress=LOCAL)) as client,
    ):
        token = BEFORE_WRITE.set(gate)
        try:
            await client.post(url + "/x", json={})
        finally:
            BEFORE_WRITE.reset(token)
        await client.post(url + "/x", json={})  # no gate outside a send
    assert events == ["gate", "received", "received"]


async def test_lean_client_writes_what_httpx_would_and_reads_the_answer() -> None:
    seen: list[bytes] = []
    events: list[str] = []

    def respond(data: bytes) -> bytes:
        seen.append(data)
        events.append("received")
        return ok(b'{"messages":[{"id":"wamid.1"}]}', b"X-Answer: yes\r\n")

    async def gate() -> None:
        events.append("gate")

    timeout = httpx.Timeout(5.0)
    async with http_server(respond) as url, LeanClient(timeout=timeout, egress=LOCAL) as client:
        token = BEFORE_WRITE.set(gate)
        try:
            answer = await client.request(
                "POST",
                f"{url}/v21.0/1/messages?x=1",
                headers={"Authorization": "Bearer t"},
                json={"to": "5511", "text": {"body": "olá"}},
            )
        finally:
            BEFORE_WRITE.reset(token)
        async with httpx.AsyncClient(
            transport=LeanTransport(egress=LOCAL), timeout=timeout
        ) as plain:
            await plain.request(
                "POST",
                f"{url}/v21.0/1/messages?x=1",
                headers={"Authorization": "Bearer t"},
                json={"to": "5511", "text": {"body": "olá"}},
            )
    assert events == ["gate", "received", "received"]
    assert answer.status_code == 200
    assert answer.headers["x-answer"] == "yes"
    assert answer.json() == {"messages": [{"id": "wamid.1"}]}
    lean, reference = (_request_parts(data) for data in seen)
    assert lean == reference  # same request line, header set and body as through httpx
    assert lean[0] == "POST /v21.0/1/messages?x=1 HTTP/1.1"


def _request_parts(data: bytes) -> tuple[str, set[str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    first, *lines = head.decode("latin-1").split("\r\n")
    return first, {line.lower() for line in lines}, body


async def test_lean_client_falls_back_to_httpx_for_anything_else() -> None:
    seen: list[bytes] = []

    def respond(data: bytes) -> bytes:
        seen.append(data)
        return ok(b"{}")

    async with (
        http_server(respond) as url,
        LeanClient(timeout=httpx.Timeout(5.0), egress=LOCAL) as client,
    ):
        await client.request("POST", url + "/x", content=b"raw", headers={"A": "1"})
        await client.request("GET", httpx.URL(url + "/y"))
        with pytest.raises(httpx.LocalProtocolError):  # no header injection
            await client.request("POST", url + "/z", headers={"A": "1\r\nB: 2"}, json={})
    assert seen[0].endswith(b"raw")
    assert seen[1].startswith(b"GET /y HTTP/1.1")
    assert len(seen) == 2


async def test_lean_client_errors_are_what_adapters_translate() -> None:
    port = free_port()
    async with LeanClient(timeout=httpx.Timeout(0.5), egress=LOCAL) as client:
        with pytest.raises(httpx.ConnectError):
            await client.request("POST", f"http://127.0.0.1:{port}/x", json={})


async def test_connections_go_through_the_egress_guard() -> None:
    """Without the loopback allowance the fake provider is unreachable, and a public-looking
    name that resolves to a private address is refused before a connection is made."""
    connections: list[int] = []
    async with http_server(lambda _: ok(b"{}"), connections) as url:
        async with LeanClient(timeout=httpx.Timeout(2.0), egress=EgressPolicy()) as client:
            with pytest.raises(EgressRefused, match="loopback"):
                await client.request("POST", url + "/x", json={})

        async def rebinding(host: str, port: int) -> list[str]:
            return ["10.1.2.3"]

        private = EgressPolicy(resolver=rebinding)
        async with LeanClient(timeout=httpx.Timeout(2.0), egress=private) as client:
            with pytest.raises(EgressRefused, match="private"):
                await client.request("POST", "http://graph.example.com/x", json={})
        async with LeanClient(timeout=httpx.Timeout(2.0), egress=LOCAL) as client:
            assert (await client.request("POST", url + "/x", json={})).status_code == 200
    assert connections == [1]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"900\r\n" + b"x" * 0x900 + b"\r\n") * 2
        + b"0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000,
    ],
)
async def test_answers_larger_than_the_bound_are_refused(answer: bytes) -> None:
    async with (
        http_server(lambda _: answer) as url,
        httpx.AsyncClient(
            transport=LeanTransport(egress=LOCAL, max_response_bytes=4096), timeout=2
        ) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError, match="larger than 4096"):
            await client.post(url + "/x", json={})


@pytest.mark.parametrize(
    "base_url", ["http://169.254.169.254/latest", "http://10.0.0.8:8080", "http://[::1]:9"]
)
async def test_a_channel_whose_base_url_is_a_forbidden_address_fails_at_once(
    monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    """The sender's provider port on a tenant base URL into the sender's own network: a
    permanent channel-config failure (no retries, no bytes sent), with vendor calls allowed."""
    monkeypatch.setenv("ZF_ALLOW_PROVIDER_REQUESTS", "1")
    calls = ProviderCalls(timeout_s=2, max_connections=2, egress=EgressPolicy())
    try:
        with pytest.raises(RequestNotAllowedError) as refused:
            await calls.send(
                settings().model_copy(update={"base_url": base_url}),
                ChannelCredentialsReply(found=True, credentials={"access_token": "t"}),
                request(TextContent(body="oi")),
                before_write=_no_gate,
            )
    finally:
        await calls.aclose()
    assert refused.value.code == "egress_refused"
    assert error_kind(refused.value) is ErrorKind.PERMANENT


async def _no_gate() -> None:
    return None


# -- credentials -----------------------------------------------------------------------------


@dataclass
class Msg:
    data: bytes


# -- channel replay --------------------------------------------------------------------------


def test_channel_events_apply_in_stream_order() -> None:
    replay = ChannelReplay(js=None)  # type: ignore[arg-type]
    channel = settings()
    replay.apply(ChannelRegistered(tenant_id="t", channel=channel))
    replay.apply(ChannelDisabled(tenant_id="t", channel_id="c1"))
    current = replay.get("t", "c1")
    assert current is not None
    assert not current.enabled
    faster = channel.model_copy(update={"pace": PaceSettings(rate_per_second=10), "enabled": True})
    replay.apply(ChannelUpdated(tenant_id="t", channel=faster, changed=("pace", "enabled")))
    current = replay.get("t", "c1")
    assert current is not None
    assert current.enabled
    assert current.pace.rate_per_second == 10
    assert replay.get("other", "c1") is None
