"""Every recorded WuzAPI payload, asserted field by field."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from zapflow.contracts.model import DeliveryStatus, Direction, MessageKind
from zapflow.providers.base import ChannelConfig, ChannelSecrets, OutboundContent
from zapflow.providers.content import ReplyTo
from zapflow.providers.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProviderUnavailableError,
    TransientError,
    WebhookAuthError,
)
from zapflow.providers.wuzapi import WuzapiAdapter

PROVIDER = "wuzapi"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
ADAPTER = WuzapiAdapter()
CHANNEL = ChannelConfig("wuzapi", "http://localhost:8080", {"token": "wuz-user-token"})
SENT_ID = "3EB0C8F1A2B3D4E5F60718"
TEXT = "Oi Ana! Atendemos de segunda a sábado, das 8h às 18h."


def utc(day: int, hour: int, minute: int, second: int = 0, micro: int = 0) -> datetime:
    """A November 2025 instant in UTC (every fixture lives there)."""
    return datetime(2025, 11, day, hour, minute, second, micro, tzinfo=UTC)


def assert_ana_text(body: bytes, content_type: str) -> None:
    parsed = ADAPTER.parse_webhook(body, content_type)
    assert (parsed.statuses, parsed.ignored) == ([], [])
    (msg,) = parsed.messages
    assert (msg.provider_message_id, msg.kind) == ("3A5F0C9E8B7D6A1F2E3C", MessageKind.TEXT)
    assert (msg.direction, msg.from_me) == (Direction.INBOUND, False)
    assert msg.text == "Olá! Qual o horário de atendimento da loja?"
    assert msg.sent_at == utc(20, 14, 0)  # 11:00-03:00
    contact = msg.contact
    assert (contact.phone, contact.name) == ("+5511999990001", "Ana Souza")
    assert (contact.wa_id, contact.lid) == ("5511999990001@s.whatsapp.net", "201245678901234@lid")


def inbound_text_form(raw: bytes, doc: Any) -> None:
    # The fixture shows the decoded form fields; the wire body is their url-encoding.
    body = urllib.parse.urlencode(sorted(doc.items())).encode()
    assert_ana_text(body, FORM)
    assert_ana_text(body, "")  # sniffed


def inbound_image(raw: bytes, doc: Any) -> None:
    (msg,) = ADAPTER.parse_webhook(raw, JSON).messages
    assert (msg.provider_message_id, msg.kind) == (
        "AC5F2E7B9D1E4A3C8B6F0D2E4A6C8E0F",
        MessageKind.IMAGE,
    )
    assert msg.sent_at == utc(20, 14, 2)
    assert (msg.contact.phone, msg.contact.lid) == ("+5511999990002", "173829104857362@lid")
    media = msg.media
    assert media is not None
    assert (media.mime_type, media.caption) == ("image/jpeg", "Segue a foto: a peça veio rachada")
    assert media.sha256 == "uI8+R0m27ZTIRm2BeRKtpR2hVns0cXVrSjkKBvN9Icg="
    assert media.size_bytes == 184532
    assert media.url is not None
    assert media.url.startswith("https://mmg.whatsapp.net/")
    assert media.filename is None  # top-level fileName is synthesized from the id


def status_check(status: DeliveryStatus, at: datetime) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        (update,) = ADAPTER.parse_webhook(raw, JSON).statuses
        assert (update.provider_message_id, update.status, update.at) == (SENT_ID, status, at)
        assert update.recipient is not None
        assert update.recipient.phone == "+5511999990001"

    return check


def send_check(content: OutboundContent) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        spec = ADAPTER.build_send_request(content, CHANNEL)
        assert spec.json == doc
        assert (spec.method, spec.url) == ("POST", "http://localhost:8080/chat/send/text")
        assert spec.headers == {"Token": "wuz-user-token"}

    return check


def response_check(raw: bytes, doc: Any) -> None:
    result = ADAPTER.parse_send_response(200, raw)
    assert (result.provider_message_id, result.status) == (SENT_ID, DeliveryStatus.SENT)
    assert result.at == utc(20, 14, 1)  # unix seconds and legacy RFC 3339 agree


def error_check(cls: type[Exception]) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        status = doc["code"]
        error = ADAPTER.classify_error(status, raw)
        assert type(error) is cls
        assert (error.provider, error.http_status, error.detail) == ("wuzapi", status, doc["error"])
        with pytest.raises(cls):
            ADAPTER.parse_send_response(status, raw)

    return check


def error_send_failed(raw: bytes, doc: Any) -> None:
    error_check(ProviderUnavailableError)(raw, doc)
    assert isinstance(ADAPTER.classify_error(500, raw), TransientError)


def signature_example(raw: bytes, doc: Any) -> None:
    secrets = ChannelSecrets(hmac_key=doc["hmac_key"])
    for mode in ("json_mode", "form_mode"):
        body = doc[mode]["raw_body"].encode()
        headers = {doc["header_name"]: doc[mode]["header_value"]}
        ADAPTER.verify_webhook(headers, body, {}, secrets)
        with pytest.raises(WebhookAuthError):
            ADAPTER.verify_webhook(headers, body + b" ", {}, secrets)
        with pytest.raises(WebhookAuthError):
            ADAPTER.verify_webhook({}, body, {}, secrets)
        (update,) = ADAPTER.parse_webhook(body, doc[mode]["content_type"]).statuses
        assert (update.provider_message_id, update.status) == (SENT_ID, DeliveryStatus.READ)
        assert update.at == utc(20, 14, 1, 45)


EXPECT: dict[str, Callable[[bytes, Any], None]] = {
    "error_missing_phone.json": error_check(InvalidRequestError),
    "error_send_failed.json": error_send_failed,
    "error_unauthorized.json": error_check(AuthenticationError),
    "inbound_image.json": inbound_image,
    "inbound_text.json": lambda raw, doc: assert_ana_text(raw, JSON),
    "inbound_text_form.json": inbound_text_form,
    "send_reply_request.json": send_check(
        OutboundContent(
            to="+5511999990001",
            text="Respondendo à sua pergunta: abrimos às 8h.",
            reply_to=ReplyTo("3A5F0C9E8B7D6A1F2E3C"),
        )
    ),
    "send_text_request.json": send_check(OutboundContent(to="+5511999990001", text=TEXT)),
    "send_text_request_with_id.json": send_check(
        OutboundContent(to="+5511999990001", text=TEXT, client_message_id=SENT_ID)
    ),
    "send_text_response.json": response_check,
    "send_text_response_legacy.json": response_check,
    "signature_example.json": signature_example,
    "status_delivered.json": status_check(DeliveryStatus.DELIVERED, utc(20, 14, 1, 3)),
    "status_read.json": status_check(DeliveryStatus.READ, utc(20, 14, 1, 45)),
}


def test_fixture(
    fixture_name: str, raw: Callable[[str, str], bytes], doc: Callable[[str, str], Any]
) -> None:
    check = EXPECT.get(fixture_name)
    assert check is not None, f"no expectation for {PROVIDER}/{fixture_name}"
    check(raw(PROVIDER, fixture_name), doc(PROVIDER, fixture_name))
