"""Every recorded Meta payload, asserted field by field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from zapflow.contracts.model import DeliveryStatus, Direction, MessageKind
from zapflow.providers.base import ChannelConfig, ChannelSecrets, OutboundContent
from zapflow.providers.content import (
    InteractiveContent,
    ListRow,
    ListSection,
    OutboundMedia,
    ReplyButton,
    ReplyTo,
    TemplateContent,
)
from zapflow.providers.errors import (
    AuthenticationError,
    PermanentError,
    RateLimitedError,
    TemplateError,
    TransientError,
    WebhookAuthError,
)
from zapflow.providers.meta import MetaAdapter, verify_handshake

PROVIDER = "meta"
JSON = "application/json"
ADAPTER = MetaAdapter()
CHANNEL = ChannelConfig(
    "meta",
    "http://127.0.0.1:8080/v21.0",
    {"access_token": "EAAG-test-token", "phone_number_id": "109876543210987"},
)
TEXT_ID = "wamid.HBgNNTUxMTk5OTk5MDAwMRUCABIYFDNBNUYwQzlFOEI3RDZBMUYyRTNDAA=="
SENT_ID = "wamid.HBgNNTUxMTk5OTk5MDAwMRUCABEYEjhGMkQ0QjZBMUMzRTVGNzA5MQA="


def utc(day: int, hour: int, minute: int, second: int = 0, micro: int = 0) -> datetime:
    """A November 2025 instant in UTC (every fixture lives there)."""
    return datetime(2025, 11, day, hour, minute, second, micro, tzinfo=UTC)


def inbound_text(raw: bytes, doc: Any) -> None:
    parsed = ADAPTER.parse_webhook(raw, JSON)
    assert (parsed.statuses, parsed.edits, parsed.revokes, parsed.ignored) == ([], [], [], [])
    (msg,) = parsed.messages
    assert msg.provider_message_id == TEXT_ID
    assert (msg.kind, msg.direction, msg.from_me) == (MessageKind.TEXT, Direction.INBOUND, False)
    assert msg.text == "Olá! Qual o horário de atendimento da loja?"
    assert msg.sent_at == utc(20, 14, 0)
    assert msg.sent_at.tzinfo is not None
    assert msg.contact.phone == "+5511999990001"
    assert (msg.contact.wa_id, msg.contact.name) == ("5511999990001", "Ana Souza")
    assert (msg.group, msg.sender, msg.reply_to, msg.raw) == (None, None, None, None)


def inbound_image(raw: bytes, doc: Any) -> None:
    (msg,) = ADAPTER.parse_webhook(raw, JSON).messages
    assert msg.kind is MessageKind.IMAGE
    assert msg.text is None
    assert msg.provider_message_id.startswith("wamid.HBgNNTUxMTk5OTk5MDAwMhUCABIYIEFD")
    assert msg.sent_at == utc(20, 14, 2)
    assert (msg.contact.phone, msg.contact.name) == ("+5511999990002", "Bruno Lima")
    media = msg.media
    assert media is not None
    assert media.provider_media_id == "1481920374659201"
    assert media.mime_type == "image/jpeg"
    assert media.sha256 == "iEbblXujyQu103rqXkdDVyEdDj40uzB7EiMra1mRZeA="
    assert media.caption == "Segue a foto: a peça veio rachada"
    assert media.url is not None
    assert media.url.startswith("https://lookaside.fbsbx.com/")


def status_check(status: DeliveryStatus, at: datetime) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        (update,) = ADAPTER.parse_webhook(raw, JSON).statuses
        assert (update.provider_message_id, update.status, update.at) == (SENT_ID, status, at)
        assert update.recipient is not None
        assert update.recipient.phone == "+5511999990001"
        assert (update.error_code, update.error_text) == (None, None)

    return check


def status_failed(raw: bytes, doc: Any) -> None:
    parsed = ADAPTER.parse_webhook(raw, JSON)
    (update,) = parsed.statuses
    assert update.status is DeliveryStatus.FAILED
    assert (
        update.provider_message_id
        == "wamid.HBgNNTUxMTk5OTk5MDAwMxUCABEYEjdCMUUzRDVGOUEyQzRFNjA4MQA="
    )
    assert update.at == utc(21, 14, 0, 1)
    assert update.recipient is not None
    assert update.recipient.phone == "+5511999990003"
    assert update.error_code == "131047"
    assert update.error_text is not None
    assert update.error_text.startswith("Re-engagement message")
    assert "24 hours" in update.error_text


def send_check(content: OutboundContent) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        spec = ADAPTER.build_send_request(content, CHANNEL)
        assert spec.json == doc
        assert (spec.method, spec.path) == ("POST", "/109876543210987/messages")
        assert spec.url == "http://127.0.0.1:8080/v21.0/109876543210987/messages"
        assert spec.headers == {"Authorization": "Bearer EAAG-test-token"}

    return check


def mark_read_request(raw: bytes, doc: Any) -> None:
    spec = ADAPTER.build_mark_read_request(TEXT_ID, CHANNEL)
    assert spec.json == doc
    assert spec.path == "/109876543210987/messages"


def mark_read_response(raw: bytes, doc: Any) -> None:
    ADAPTER.parse_mark_read_response(200, raw)


def send_text_response(raw: bytes, doc: Any) -> None:
    result = ADAPTER.parse_send_response(200, raw)
    assert (result.provider_message_id, result.status) == (SENT_ID, DeliveryStatus.QUEUED)
    assert result.recipient is not None
    assert result.recipient.phone == "+5511999990001"


def send_template_response(raw: bytes, doc: Any) -> None:
    result = ADAPTER.parse_send_response(200, raw)
    assert (
        result.provider_message_id
        == "wamid.HBgNNTUxMTk5OTk5MDAwMhUCABEYEjRDOUUxQTdGM0I1RDJFODA2MQA="
    )
    assert result.status is DeliveryStatus.QUEUED  # message_status "accepted"
    assert result.recipient is not None
    assert (result.recipient.phone, result.recipient.wa_id) == ("+5511999990002", "5511999990002")


def error_check(
    http_status: int, cls: type[Exception], root: type[Exception], code: str
) -> Callable[[bytes, Any], None]:
    def check(raw: bytes, doc: Any) -> None:
        for status in {http_status, 400}:  # Meta is classified by error.code, not HTTP status
            error = ADAPTER.classify_error(status, raw)
            assert isinstance(error, cls)
            assert isinstance(error, root)
            assert (error.provider, error.code, error.http_status) == ("meta", code, status)
            with pytest.raises(cls):
                ADAPTER.parse_send_response(status, raw)

    return check


def error_pair_rate_limit(raw: bytes, doc: Any) -> None:
    error_check(400, RateLimitedError, TransientError, "131056")(raw, doc)
    assert ADAPTER.classify_error(400, raw).retry_after == 6.0
    assert ADAPTER.classify_error(400, raw, headers={"retry-after": "30"}).retry_after == 30.0


def signature_example(raw: bytes, doc: Any) -> None:
    body = doc["raw_body"].encode()
    secrets = ChannelSecrets(app_secret=doc["app_secret"])
    headers = {doc["header_name"].lower(): doc["header_value"]}
    ADAPTER.verify_webhook(headers, body, {}, secrets)
    with pytest.raises(WebhookAuthError):
        ADAPTER.verify_webhook(headers, body.replace(b"Bruno", b"Bruna"), {}, secrets)
    assert ADAPTER.parse_webhook(body, JSON).messages[0].media is not None


def verification_handshake(raw: bytes, doc: Any) -> None:
    query = doc["request"]["query"]
    assert (
        verify_handshake(query, doc["configured_verify_token"]) == doc["expected_response"]["body"]
    )
    with pytest.raises(WebhookAuthError):
        verify_handshake(query, "another-token")


TEMPLATE = TemplateContent(
    name="atualizacao_pedido",
    language="pt_BR",
    components=(
        {
            "type": "header",
            "parameters": [
                {"type": "image", "image": {"link": "https://cdn.example.com/banners/pedido.jpg"}}
            ],
        },
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Bruno"}, {"type": "text", "text": "#48213"}],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "RASTREAR_48213"}],
        },
    ),
)
BUTTONS = InteractiveContent(
    kind="button",
    body="Posso confirmar seu agendamento para amanhã às 10h?",
    buttons=(ReplyButton("confirmar_sim", "Sim"), ReplyButton("confirmar_nao", "Não")),
)
LIST = InteractiveContent(
    kind="list",
    header="Atendimento",
    body="Escolha um departamento",
    footer="Loja Centro",
    button="Ver opções",
    sections=(
        ListSection(
            "Departamentos",
            (
                ListRow("dep_vendas", "Vendas", "Orçamentos e pedidos"),
                ListRow("dep_suporte", "Suporte", "Trocas e garantia"),
            ),
        ),
    ),
)
ANA = "+55 11 99999-0001"

EXPECT: dict[str, Callable[[bytes, Any], None]] = {
    "error_pair_rate_limit.json": error_pair_rate_limit,
    "error_rate_limit.json": error_check(429, RateLimitedError, TransientError, "130429"),
    "error_template_param_mismatch.json": error_check(400, TemplateError, PermanentError, "132000"),
    "error_token_expired.json": error_check(401, AuthenticationError, PermanentError, "190"),
    "inbound_image.json": inbound_image,
    "inbound_text.json": inbound_text,
    "mark_read_request.json": mark_read_request,
    "mark_read_response.json": mark_read_response,
    "send_image_by_id_request.json": send_check(
        OutboundContent(
            to=ANA,
            media=OutboundMedia(
                MessageKind.IMAGE,
                media_id="1013859600285441",
                caption="Foto enviada por upload prévio (POST /{phone-number-id}/media)",
            ),
        )
    ),
    "send_image_request.json": send_check(
        OutboundContent(
            to="5511999990001",
            media=OutboundMedia(
                MessageKind.IMAGE,
                link="https://cdn.example.com/catalogo/produto-123.jpg",
                caption="Confira o produto 123",
            ),
        )
    ),
    "send_interactive_buttons_request.json": send_check(
        OutboundContent(to=ANA, interactive=BUTTONS)
    ),
    "send_interactive_list_request.json": send_check(OutboundContent(to=ANA, interactive=LIST)),
    "send_reply_request.json": send_check(
        OutboundContent(
            to="+5511999990001",
            text="Respondendo à sua pergunta: abrimos às 8h.",
            reply_to=ReplyTo(TEXT_ID),
        )
    ),
    "send_template_request.json": send_check(
        OutboundContent(to="+5511999990002", template=TEMPLATE)
    ),
    "send_template_response.json": send_template_response,
    "send_text_request.json": send_check(
        OutboundContent(
            to="5511999990001@s.whatsapp.net",
            text="Oi Ana! Atendemos de segunda a sábado, das 8h às 18h.",
            preview_url=False,
        )
    ),
    "send_text_response.json": send_text_response,
    "signature_example.json": signature_example,
    "status_delivered.json": status_check(DeliveryStatus.DELIVERED, utc(20, 14, 1, 3)),
    "status_failed.json": status_failed,
    "status_read.json": status_check(DeliveryStatus.READ, utc(20, 14, 1, 45)),
    "status_sent.json": status_check(DeliveryStatus.SENT, utc(20, 14, 1, 1)),
    "verification_handshake.json": verification_handshake,
}


def test_fixture(
    fixture_name: str, raw: Callable[[str, str], bytes], doc: Callable[[str, str], Any]
) -> None:
    check = EXPECT.get(fixture_name)
    assert check is not None, f"no expectation for {PROVIDER}/{fixture_name}"
    check(raw(PROVIDER, fixture_name), doc(PROVIDER, fixture_name))
