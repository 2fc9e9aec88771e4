"""Every recorded Z-API payload, asserted field by field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from zapflow.contracts.model import DeliveryStatus, Direction, MessageKind
from zapflow.providers.base import ChannelConfig, OutboundContent
from zapflow.providers.content import ReplyTo
from zapflow.providers.errors import AuthenticationError
from zapflow.providers.zapi import ZapiAdapter

PROVIDER = "zapi"
JSON = "application/json"
ADAPTER = ZapiAdapter()
CHANNEL = ChannelConfig(
    "zapi",
    "http://127.0.0.1:8080",
    {"instance_id": "3D9F0A1B2C3D4E5F", "instance_token": "tok123", "client_token": "acct-sec"},
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
    assert (msg.direction, msg.from_me, msg.forwarded) == (Direction.INBOUND, False, False)
    assert msg.text == "Olá! Qual o horário de atendimento da loja?"
    assert msg.sent_at == utc(20, 14, 0)  # momment in ms
    contact = msg.contact
    assert (contact.phone, contact.wa_id, contact.name) == (
        "+5511999990001",
        "5511999990001",
        "Ana Souza",
    )
    assert contact.lid == "201245678901234@lid"  # senderLid
    assert (msg.group, msg.sender) == (None, None)


def inbound_image(raw: bytes, doc: Any) -> None:
    (msg,) = ADAPTER.parse_webhook(raw, JSON).messages
    assert (msg.provider_message_id, msg.kind) == (
        "AC5F2E7B9D1E4A3C8B6F0D2E4A6C8E0F",
        MessageKind.IMAGE,
    )
    assert msg.sent_at == utc(20, 14, 2)
    assert (msg.contact.phone, msg.contact.name) == ("+5511999990002", "Bruno Lima")
    media = msg.media
    assert media is not None
    assert media.url == (
        "https://storage.z-api.io/instances/3D9F0A1B2C3D4E5F60718293A4B5C6D7/"
        "AC5F2E7B9D1E4A3C8B6F0D2E4A6C8E0F.jpeg"
    )
    assert (media.mime_type, media.caption) == ("image/jpeg", "Segue a foto: a peça veio rachada")


def status_check(
    status: DeliveryStatus,
    at: datetime,
    *,
    message_id: str = SENT_ID,
    phone: str = "+5511999990001",
    error_text: str | None = None,
) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        (update,) = ADAPTER.parse_webhook(raw, JSON).statuses
        assert (update.provider_message_id, update.status, update.at) == (message_id, status, at)
        assert update.recipient is not None
        assert update.recipient.phone == phone
        assert (update.error_code, update.error_text) == (None, error_text)

    return check


def disconnected(raw: bytes, doc: Any) -> None:
    parsed = ADAPTER.parse_webhook(raw, JSON)
    assert parsed.ignored == ["DisconnectedCallback"]
    assert list(parsed.events()) == []


def send_check(content: OutboundContent) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        spec = ADAPTER.build_send_request(content, CHANNEL)
        assert spec.json == doc
        assert spec.path == "/instances/3D9F0A1B2C3D4E5F/token/tok123/send-text"
        assert spec.headers == {"Client-Token": "acct-sec"}

    return check


def send_text_response(raw: bytes, doc: Any) -> None:
    result = ADAPTER.parse_send_response(200, raw)
    assert (result.provider_message_id, result.status) == (SENT_ID, DeliveryStatus.QUEUED)


def error_check(code: str) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        for status in (400, 403):
            error = ADAPTER.classify_error(status, raw)
            assert type(error) is AuthenticationError
            assert (error.provider, error.code, error.http_status) == ("zapi", code, status)
            with pytest.raises(AuthenticationError):
                ADAPTER.parse_send_response(status, raw)

    return check


EXPECT: dict[str, Callable[[bytes, Any], None]] = {
    "delivery_callback.json": status_check(DeliveryStatus.SENT, utc(20, 14, 1, 0, 512000)),
    "disconnected_callback.json": disconnected,
    "error_client_token.json": error_check("client_token"),
    "error_ip_block.json": error_check("ip_not_allowed"),
    "inbound_image.json": inbound_image,
    "inbound_text.json": inbound_text,
    "send_reply_request.json": send_check(
        OutboundContent(
            to="+5511999990001",
            text="Respondendo à sua pergunta: abrimos às 8h.",
            reply_to=ReplyTo("3A5F0C9E8B7D6A1F2E3C"),
        )
    ),
    "send_text_request.json": send_check(
        OutboundContent(
            to="5511999990001",
            text="Oi Ana! Atendemos de segunda a sábado, das 8h às 18h.",
            delay_ms=2000,
            preview_url=False,  # Z-API has no such switch: not sent
        )
    ),
    "send_text_response.json": send_text_response,
    "status_delivered.json": status_check(DeliveryStatus.DELIVERED, utc(20, 14, 1, 3)),
    "status_failed.json": status_check(
        DeliveryStatus.FAILED,
        utc(21, 14, 0, 0, 811000),
        message_id="3EB0D9A2B3C4D5E6F70819",
        phone="+5511999990099",
        error_text="Phone number does not exist",
    ),
    "status_read.json": status_check(DeliveryStatus.READ, utc(20, 14, 1, 45)),
    "status_sent.json": status_check(DeliveryStatus.SENT, utc(20, 14, 1, 1)),
}


def test_fixture(
    fixture_name: str, raw: Callable[[str, str], bytes], doc: Callable[[str, str], Any]
) -> None:
    check = EXPECT.get(fixture_name)
    assert check is not None, f"no expectation for {PROVIDER}/{fixture_name}"
    check(raw(PROVIDER, fixture_name), doc(PROVIDER, fixture_name))
