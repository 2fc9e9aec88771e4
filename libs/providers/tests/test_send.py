"""ProviderAdapter.send through httpx.MockTransport, plus outbound building beyond the fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from zapflow.contracts.model import DeliveryStatus, MessageKind
from zapflow.providers.base import ChannelConfig, OutboundContent
from zapflow.providers.content import (
    InteractiveContent,
    OutboundMedia,
    ReplyButton,
    ReplyTo,
    TemplateContent,
)
from zapflow.providers.errors import (
    ChannelConfigError,
    InvalidRecipientError,
    InvalidRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    RequestNotAllowedError,
    TemplateError,
    UnexpectedResponseError,
    UnsupportedContentError,
)
from zapflow.providers.registry import get_adapter
from zapflow.runtime.egress import EgressPolicy, guarded_client

Raw = Callable[[str, str], bytes]
Doc = Callable[[str, str], Any]
LOCAL = "http://127.0.0.1:8080"
CHANNELS = {
    "meta": ChannelConfig(
        "meta", LOCAL + "/v21.0", {"access_token": "tok", "phone_number_id": "1098"}
    ),
    "evolution": ChannelConfig("evolution", LOCAL, {"api_key": "k", "instance": "loja centro"}),
    "zapi": ChannelConfig("zapi", LOCAL, {"instance_id": "I", "instance_token": "T"}),
    "wuzapi": ChannelConfig("wuzapi", LOCAL, {"token": "w"}),
}
TEXT = OutboundContent(
    to="+5511999990001", text="Oi Ana! Atendemos de segunda a sábado, das 8h às 18h."
)


def client_answering(
    status: int, body: bytes, seen: list[httpx.Request], **headers: str
) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, content=body, headers=headers)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("provider", "status", "path"),
    [
        ("meta", 200, "/v21.0/1098/messages"),
        ("evolution", 201, "/message/sendText/loja%20centro"),
        ("zapi", 200, "/instances/I/token/T/send-text"),
        ("wuzapi", 200, "/chat/send/text"),
    ],
)
async def test_send_text_round_trip(provider: str, status: int, path: str, raw: Raw) -> None:
    seen: list[httpx.Request] = []
    async with client_answering(status, raw(provider, "send_text_response.json"), seen) as client:
        result = await get_adapter(provider).send(client, TEXT, CHANNELS[provider])
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", path.replace("%20", " "))
    assert request.url.raw_path.decode().startswith(path)
    sent = json.loads(request.content)
    assert TEXT.text in sent.values() or sent.get("text", {}).get("body") == TEXT.text
    expected = DeliveryStatus.SENT if provider == "wuzapi" else DeliveryStatus.QUEUED
    assert result.status is expected
    assert result.provider_message_id


async def test_send_raises_classified_errors(raw: Raw) -> None:
    seen: list[httpx.Request] = []
    body = raw("meta", "error_rate_limit.json")
    async with client_answering(429, body, seen, **{"Retry-After": "12"}) as client:
        with pytest.raises(RateLimitedError) as info:
            await get_adapter("meta").send(client, TEXT, CHANNELS["meta"])
    assert (info.value.code, info.value.retry_after) == ("130429", 12.0)
    async with client_answering(
        400, raw("meta", "error_template_param_mismatch.json"), seen
    ) as client:
        with pytest.raises(TemplateError):
            await get_adapter("meta").send(client, TEXT, CHANNELS["meta"])
    async with client_answering(200, b'{"messages": []}', seen) as client:
        with pytest.raises(UnexpectedResponseError):
            await get_adapter("meta").send(client, TEXT, CHANNELS["meta"])
    async with client_answering(502, b"<html>bad gateway</html>", seen) as client:
        with pytest.raises(ProviderUnavailableError):
            await get_adapter("evolution").send(client, TEXT, CHANNELS["evolution"])


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("slow"), ProviderTimeoutError),
        (httpx.ReadTimeout("slow"), ProviderTimeoutError),
        (httpx.ConnectError("refused"), ProviderUnavailableError),
        (httpx.RemoteProtocolError("eof"), ProviderUnavailableError),
    ],
)
async def test_transport_errors_become_transient(exc: Exception, expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(expected) as info:
            await get_adapter("zapi").send(client, TEXT, CHANNELS["zapi"])
    assert info.value.__cause__ is exc


async def test_non_loopback_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, raw: Raw
) -> None:
    monkeypatch.delenv("ZF_ALLOW_PROVIDER_REQUESTS", raising=False)
    channel = ChannelConfig("wuzapi", "https://wuzapi.example.com", {"token": "w"})
    seen: list[httpx.Request] = []
    async with client_answering(200, raw("wuzapi", "send_text_response.json"), seen) as client:
        with pytest.raises(RequestNotAllowedError):
            await get_adapter("wuzapi").send(client, TEXT, channel)
        assert seen == []
        monkeypatch.setenv("ZF_ALLOW_PROVIDER_REQUESTS", "1")
        result = await get_adapter("wuzapi").send(client, TEXT, channel)
    assert result.provider_message_id == "3EB0C8F1A2B3D4E5F60718"
    assert len(seen) == 1
    for url in ("ftp://127.0.0.1/x", "not a url", "http://[::1"):
        with pytest.raises(ChannelConfigError):
            await get_adapter("wuzapi").send(
                client, TEXT, ChannelConfig("wuzapi", url, {"token": "w"})
            )


def test_media_requests_per_provider() -> None:
    doc = OutboundMedia(
        MessageKind.DOCUMENT,
        link="https://cdn.test/files/nota.pdf",
        caption="NF",
        filename="nota.pdf",
    )
    content = OutboundContent(to="+5511999990001", media=doc, reply_to=ReplyTo("Q1"))
    meta = get_adapter("meta").build_send_request(content, CHANNELS["meta"]).json
    assert meta is not None
    assert meta["document"] == {
        "link": doc.link,
        "caption": "NF",
        "filename": "nota.pdf",
    }
    assert meta["context"] == {"message_id": "Q1"}
    evo = get_adapter("evolution").build_send_request(content, CHANNELS["evolution"])
    assert evo.path == "/message/sendMedia/loja%20centro"
    assert evo.json is not None
    assert (evo.json["mediatype"], evo.json["media"], evo.json["fileName"]) == (
        "document",
        doc.link,
        "nota.pdf",
    )
    zapi = get_adapter("zapi").build_send_request(content, CHANNELS["zapi"])
    assert zapi.path.endswith("/send-document/pdf")
    assert zapi.json is not None
    assert (zapi.json["document"], zapi.json["messageId"]) == (doc.link, "Q1")
    wuz = get_adapter("wuzapi").build_send_request(content, CHANNELS["wuzapi"])
    assert wuz.path == "/chat/send/document"
    assert wuz.json is not None
    assert wuz.json["ContextInfo"] == {
        "StanzaId": "Q1",
        "Participant": "5511999990001@s.whatsapp.net",
    }
    voice = OutboundContent(
        to="5511999990001", media=OutboundMedia(MessageKind.AUDIO, link="https://cdn.test/a.ogg")
    )
    assert (
        get_adapter("evolution")
        .build_send_request(voice, CHANNELS["evolution"])
        .path.startswith("/message/sendWhatsAppAudio/")
    )


@pytest.mark.parametrize("provider", ["evolution", "zapi", "wuzapi"])
def test_unofficial_providers_refuse_templates_interactive_and_media_ids(provider: str) -> None:
    adapter = get_adapter(provider)
    contents = [
        OutboundContent(to="+5511999990001", template=TemplateContent("t", "pt_BR")),
        OutboundContent(
            to="+5511999990001",
            interactive=InteractiveContent(
                kind="button", body="?", buttons=(ReplyButton("a", "A"),)
            ),
        ),
        OutboundContent(
            to="+5511999990001", media=OutboundMedia(MessageKind.IMAGE, media_id="123")
        ),
    ]
    for content in contents:
        with pytest.raises(UnsupportedContentError):
            adapter.build_send_request(content, CHANNELS[provider])


def test_groups_recipients_and_credentials() -> None:
    group = OutboundContent(to="120363025246125888@g.us", text="oi grupo")
    assert get_adapter("zapi").build_send_request(group, CHANNELS["zapi"]).json == {
        "phone": "120363025246125888-group",
        "message": "oi grupo",
    }
    wuz = get_adapter("wuzapi").build_send_request(group, CHANNELS["wuzapi"]).json
    assert wuz is not None
    assert wuz["Phone"] == "120363025246125888@g.us"
    with pytest.raises(InvalidRecipientError):
        get_adapter("meta").build_send_request(group, CHANNELS["meta"])
    with pytest.raises(ChannelConfigError):
        get_adapter("meta").build_send_request(
            TEXT, ChannelConfig("meta", LOCAL, {"access_token": "t"})
        )
    assert "tok" not in repr(CHANNELS["meta"])
    assert "send-text" not in repr(get_adapter("zapi").build_send_request(TEXT, CHANNELS["zapi"]))


def test_content_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        OutboundContent(to="+5511999990001")
    with pytest.raises(ValueError, match="exactly one"):
        OutboundMedia(MessageKind.IMAGE)
    with pytest.raises(ValueError, match="not a media kind"):
        OutboundMedia(MessageKind.TEXT, link="x")
    with pytest.raises(ValueError, match="list messages"):
        InteractiveContent(kind="list", body="b")


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "127.0.0.1", "fd00::1"])
async def test_a_base_url_the_egress_guard_refuses_is_a_permanent_config_error(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """A tenant's base URL whose name resolves to a forbidden address fails the send at once
    (not a transient 'unreachable'), before a byte is written."""
    monkeypatch.setenv("ZF_ALLOW_PROVIDER_REQUESTS", "1")

    async def resolver(host: str, port: int) -> list[str]:
        return [address]

    channel = ChannelConfig(
        "evolution", "https://evo.tenant.example", {"api_key": "k", "instance": "i"}
    )
    async with guarded_client(EgressPolicy(resolver=resolver), timeout=2) as client:
        with pytest.raises(RequestNotAllowedError) as refused:
            await get_adapter("evolution").send(client, TEXT, channel)
    assert refused.value.code == "egress_refused"
    assert "k" not in str(refused.value).split()


def test_client_message_id_travels_where_the_provider_echoes_or_deduplicates_it() -> None:
    ours = "6f1c3b1e-5d0a-4f7e-9a51-3c2b7d9e8a10"
    content = OutboundContent(to="+5511999990001", text="oi", client_message_id=ours)
    meta = get_adapter("meta").build_send_request(content, CHANNELS["meta"]).json
    assert meta is not None
    assert meta["biz_opaque_callback_data"] == ours  # echoed in every status webhook
    assert "biz_opaque_callback_data" not in (
        get_adapter("meta").build_send_request(TEXT, CHANNELS["meta"]).json or {}
    )
    wuz = get_adapter("wuzapi").build_send_request(content, CHANNELS["wuzapi"]).json
    assert wuz is not None
    assert wuz["Id"] == ours  # WhatsApp's message id: a resend is de-duplicated
    for provider in ("evolution", "zapi"):  # neither takes an id of ours
        body = get_adapter(provider).build_send_request(content, CHANNELS[provider]).json
        assert ours not in json.dumps(body)
    with pytest.raises(InvalidRequestError):
        get_adapter("meta").build_send_request(
            OutboundContent(to="+5511999990001", text="oi", client_message_id="x" * 513),
            CHANNELS["meta"],
        )
