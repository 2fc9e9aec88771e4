"""Pure decisions of the outbound path: timeline content, recipients, outcomes, parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pydantic import ValidationError

from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import (
    InteractiveContent,
    MediaContent,
    MediaType,
    OutboundContent,
    ReplyButton,
    TemplateContent,
    TextContent,
)
from zapflow.contracts.model import DeliveryStatus, MessageKind, Party
from zapflow.contracts.sending.v1 import (
    FailureReason,
    Recipient,
    SendFailed,
    SendRequest,
    SendRequested,
    SendSucceeded,
    SendVetoed,
    VetoReason,
)
from zapflow.ingest.outbound import (
    SEND_EVENTS,
    TimelineContent,
    channel_of,
    message_id_of,
    outcome_of,
    recipient_party,
    timeline_content,
)

AT = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)
PHONE = "+5511999990001"
IMAGE = MediaContent(
    media_type=MediaType.IMAGE,
    url="https://cdn.example/p.png",
    caption="foto",
    mime_type="image/png",
)


def request(**fields: object) -> SendRequest:
    base: dict[str, object] = {
        "message_id": uuid4(),
        "channel_id": "ch-1",
        "to": Recipient(phone=PHONE),
        "content": TextContent(body="oi"),
        "origin": SendOrigin.OPERATOR,
        "idempotency_key": "k",
    }
    base.update(fields)
    return SendRequest.model_validate(base)


@pytest.mark.parametrize(
    ("content", "kind", "text"),
    [
        (TextContent(body="seu pedido saiu"), MessageKind.TEXT, "seu pedido saiu"),
        (IMAGE, MessageKind.IMAGE, None),
        (
            TemplateContent(name="pedido", language="pt_BR", rendered_text="Pedido 42 enviado"),
            MessageKind.TEMPLATE,
            "Pedido 42 enviado",
        ),
        (
            InteractiveContent(
                style="buttons", body="Confirma?", buttons=(ReplyButton(id="y", title="Sim"),)
            ),
            MessageKind.INTERACTIVE,
            "Confirma?",
        ),
    ],
)
def test_timeline_shows_each_kind_of_content(
    content: OutboundContent, kind: MessageKind, text: str | None
) -> None:
    shown = timeline_content(content)
    assert (shown.kind, shown.text) == (kind, text)


def test_media_keeps_its_caption_and_source_and_a_template_its_header() -> None:
    shown = timeline_content(IMAGE)
    assert shown.media is not None
    assert (shown.media.caption, shown.media.url, shown.media.mime_type) == (
        "foto",
        "https://cdn.example/p.png",
        "image/png",
    )
    template = TemplateContent(name="promo", language="pt_BR", header_media=IMAGE)
    assert timeline_content(template) == TimelineContent(MessageKind.TEMPLATE, None, shown.media)


@pytest.mark.parametrize(
    ("to", "party", "kind"),
    [
        (Recipient(phone=PHONE), Party(phone=PHONE), "person"),
        (
            Recipient(phone=PHONE, wa_id="5511999990001"),
            Party(phone=PHONE, wa_id="5511999990001"),
            "person",
        ),
        (Recipient(wa_id="201245678901234@lid"), Party(lid="201245678901234@lid"), "person"),
        (
            Recipient(wa_id="120363025246125486@g.us"),
            Party(wa_id="120363025246125486@g.us"),
            "group",
        ),
        (
            Recipient(wa_id="5511999990000-1600000000-group"),
            Party(wa_id="5511999990000-1600000000-group"),
            "group",
        ),
    ],
)
def test_recipient_names_a_person_by_phone_or_lid_or_a_group(
    to: Recipient, party: Party, kind: str
) -> None:
    assert recipient_party(to) == (party, kind)


def test_veto_codes_are_the_reason_and_its_text() -> None:
    vetoed = SendVetoed(
        tenant_id="acme",
        occurred_at=AT,
        request=request(),
        decision_id=uuid4(),
        reason=VetoReason.OPTED_OUT,
        text="the contact opted out",
    )
    outcome = outcome_of(vetoed)
    assert (outcome.status, outcome.at) == (DeliveryStatus.VETOED, AT)
    assert (outcome.reason, outcome.error_code, outcome.error_text) == (
        "opted_out",
        "opted_out",
        "the contact opted out",
    )
    assert outcome.provider_message_id is None


@pytest.mark.parametrize(
    ("provider_code", "code"), [("131026", "131026"), (None, "invalid_recipient")]
)
def test_failure_keeps_the_provider_code_else_the_reason(
    provider_code: str | None, code: str
) -> None:
    failed = SendFailed(
        tenant_id="acme",
        message_id=uuid4(),
        channel_id="ch-1",
        provider="meta",
        reason=FailureReason.INVALID_RECIPIENT,
        permanent=True,
        error_code=provider_code,
        error_text="undeliverable",
        attempts=1,
        failed_at=AT,
    )
    outcome = outcome_of(failed)
    assert (outcome.status, outcome.reason, outcome.error_code, outcome.error_text) == (
        DeliveryStatus.FAILED,
        "invalid_recipient",
        code,
        "undeliverable",
    )


@pytest.mark.parametrize(("provider_id", "linked"), [("wamid.A", "wamid.A"), ("", None)])
def test_success_carries_the_provider_id_when_there_is_one(
    provider_id: str, linked: str | None
) -> None:
    sent = SendSucceeded(
        tenant_id="acme",
        message_id=uuid4(),
        channel_id="ch-1",
        provider="meta",
        provider_message_id=provider_id,
        attempts=1,
        sent_at=AT,
    )
    outcome = outcome_of(sent)
    assert (outcome.status, outcome.at, outcome.provider_message_id) == (
        DeliveryStatus.SENT,
        AT,
        linked,
    )


def test_send_events_parse_by_type_and_name_their_message_and_channel() -> None:
    req = request(channel_id="ch-9")
    requested = SendRequested(tenant_id="acme", request=req)
    succeeded = SendSucceeded(
        tenant_id="acme",
        message_id=req.message_id,
        channel_id="ch-9",
        provider="meta",
        provider_message_id="wamid.A",
        attempts=1,
        sent_at=AT,
    )
    for evt in (requested, succeeded):
        parsed = SEND_EVENTS.validate_json(evt.model_dump_json())
        assert parsed == evt
        assert (message_id_of(parsed), channel_of(parsed)) == (req.message_id, "ch-9")
    with pytest.raises(ValidationError):
        SEND_EVENTS.validate_json('{"type": "zf.sending.deferred.v1", "tenant_id": "acme"}')
