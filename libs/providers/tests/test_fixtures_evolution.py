"""Every recorded Evolution API payload, asserted field by field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from zapflow.contracts.model import DeliveryStatus, Direction, MessageKind
from zapflow.providers.base import ChannelConfig, OutboundContent
from zapflow.providers.content import ReplyTo
from zapflow.providers.errors import (
    AuthenticationError,
    ChannelConfigError,
    InvalidRecipientError,
    InvalidRequestError,
)
from zapflow.providers.evolution import EvolutionAdapter

PROVIDER = "evolution"
JSON = "application/json"
ADAPTER = EvolutionAdapter()
CHANNEL = ChannelConfig(
    "evolution", "http://127.0.0.1:8080", {"api_key": "evo-key", "instance": "loja-centro"}
)
SENT_ID = "3EB0C8F1A2B3D4E5F60718"


def utc(day: int, hour: int, minute: int, second: int = 0, micro: int = 0) -> datetime:
    """A November 2025 instant in UTC (every fixture lives there)."""
    return datetime(2025, 11, day, hour, minute, second, micro, tzinfo=UTC)


def inbound_text(raw: bytes, doc: Any) -> None:
    parsed = ADAPTER.parse_webhook(raw, JSON)
    assert (parsed.statuses, parsed.ignored) == ([], [])
    (msg,) = parsed.messages
    assert (msg.provider_message_id, msg.kind) == ("3A5F0C9E8B7D6A1F2E3C", MessageKind.TEXT)
    assert (msg.direction, msg.from_me) == (Direction.INBOUND, False)
    assert msg.text == "Olá! Qual o horário de atendimento da loja?"
    assert msg.sent_at == utc(20, 14, 0)
    contact = msg.contact
    assert (contact.phone, contact.name) == ("+5511999990001", "Ana Souza")
    assert (contact.wa_id, contact.lid) == ("5511999990001@s.whatsapp.net", "201245678901234@lid")
    assert (msg.group, msg.reply_to, msg.raw_type) == (None, None, "conversation")


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
    assert media.size_bytes == 184532  # {low, high} long
    assert media.sha256 == "uI8+R0m27ZTIRm2BeRKtpR2hVns0cXVrSjkKBvN9Icg="  # index-object bytes
    assert media.url is not None
    assert media.url.startswith("https://mmg.whatsapp.net/")


def send_message_event(raw: bytes, doc: Any) -> None:
    (msg,) = ADAPTER.parse_webhook(raw, JSON).messages
    assert (msg.provider_message_id, msg.direction, msg.from_me) == (
        SENT_ID,
        Direction.OUTBOUND,
        True,
    )
    assert msg.text == "Oi Ana! Atendemos de segunda a sábado, das 8h às 18h."
    assert msg.contact.phone == "+5511999990001"
    assert msg.contact.name is None
    assert msg.sent_at == utc(20, 14, 1)


def status_check(
    status: DeliveryStatus, at: datetime, message_id: str = SENT_ID, phone: str = "+5511999990001"
) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        (update,) = ADAPTER.parse_webhook(raw, JSON).statuses
        assert (update.provider_message_id, update.status, update.at) == (message_id, status, at)
        assert update.recipient is not None
        assert update.recipient.phone == phone
        if status is DeliveryStatus.FAILED:
            assert update.error_code == "ERROR"

    return check


def ignored(reason: str) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        parsed = ADAPTER.parse_webhook(raw, JSON)
        assert parsed.ignored == [reason]
        assert list(parsed.events()) == []

    return check


def contacts_upsert(raw: bytes, doc: Any) -> None:
    parsed = ADAPTER.parse_webhook(raw, JSON)
    (person,) = parsed.contacts
    assert (person.phone, person.name, person.wa_id) == (
        "+5511999990001",
        "Ana Souza",
        "5511999990001@s.whatsapp.net",
    )
    assert parsed.messages == []


def send_check(content: OutboundContent) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        spec = ADAPTER.build_send_request(content, CHANNEL)
        assert spec.json == doc
        assert (spec.method, spec.path) == ("POST", "/message/sendText/loja-centro")
        assert spec.headers == {"apikey": "evo-key"}

    return check


def send_text_response(raw: bytes, doc: Any) -> None:
    result = ADAPTER.parse_send_response(201, raw)
    assert (result.provider_message_id, result.status) == (SENT_ID, DeliveryStatus.QUEUED)
    assert result.at == utc(20, 14, 1)
    assert result.recipient is not None
    assert result.recipient.phone == "+5511999990001"


def error_check(
    status: int, cls: type[Exception], code: str | None
) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        error = ADAPTER.classify_error(status, raw)
        assert type(error) is cls
        assert (error.provider, error.http_status, error.code) == ("evolution", status, code)
        assert "5511999990099" not in str(error)  # no phone numbers in messages
        with pytest.raises(cls):
            ADAPTER.parse_send_response(status, raw)

    return check


def error_validation(raw: bytes, doc: Any) -> None:
    error_check(400, InvalidRequestError, "Bad Request")(raw, doc)
    assert ADAPTER.classify_error(400, raw).detail == 'requires property "text"'


TEXT = "Oi Ana! Atendemos de segunda a sábado, das 8h às 18h."
EXPECT: dict[str, Callable[[bytes, Any], None]] = {
    "connection_update.json": ignored("connection.update"),
    "contacts_upsert.json": contacts_upsert,
    "error_instance_not_found.json": error_check(404, ChannelConfigError, "Not Found"),
    "error_not_on_whatsapp.json": error_check(400, InvalidRecipientError, "not_on_whatsapp"),
    "error_unauthorized.json": error_check(401, AuthenticationError, "Unauthorized"),
    "error_validation.json": error_validation,
    "inbound_image.json": inbound_image,
    "inbound_text.json": inbound_text,
    "qrcode_updated.json": ignored("qrcode.updated"),
    "send_message_event.json": send_message_event,
    "send_reply_request.json": send_check(
        OutboundContent(
            to="+5511999990001",
            text="Respondendo à sua pergunta: abrimos às 8h.",
            reply_to=ReplyTo(
                "3A5F0C9E8B7D6A1F2E3C", text="Olá! Qual o horário de atendimento da loja?"
            ),
        )
    ),
    "send_text_request.json": send_check(
        OutboundContent(to="+55 11 99999-0001", text=TEXT, delay_ms=1200, preview_url=False)
    ),
    "send_text_response.json": send_text_response,
    "status_delivered.json": status_check(DeliveryStatus.DELIVERED, utc(20, 14, 1, 3, 115000)),
    "status_failed.json": status_check(
        DeliveryStatus.FAILED,
        utc(21, 14, 0, 1, 4000),
        message_id="3EB0D9A2B3C4D5E6F70819",
        phone="+5511999990003",
    ),
    "status_read.json": status_check(DeliveryStatus.READ, utc(20, 14, 1, 45, 302000)),
    "status_sent.json": status_check(DeliveryStatus.SENT, utc(20, 14, 1, 0, 880000)),
}


def test_fixture(
    fixture_name: str, raw: Callable[[str, str], bytes], doc: Callable[[str, str], Any]
) -> None:
    check = EXPECT.get(fixture_name)
    assert check is not None, f"no expectation for {PROVIDER}/{fixture_name}"
    check(raw(PROVIDER, fixture_name), doc(PROVIDER, fixture_name))
