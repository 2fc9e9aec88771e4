"""Event builders: deterministic ids, causation and the subjects they land on."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.model import DeliveryStatus, Direction, Message, MessageKind, Party
from zapflow.contracts.subjects import subject_for
from zapflow.ingest import events, ids

SRC = WebhookReceived(
    tenant_id="acme",
    provider="meta",
    channel_id="ch-1",
    received_at=datetime.now(UTC),
    body_b64="",
    correlation_id=uuid4(),
)
AT = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)


def test_message_received_is_named_by_its_raw_event_and_item() -> None:
    message = Message(
        provider_message_id="wamid.1",
        direction=Direction.INBOUND,
        kind=MessageKind.TEXT,
        sent_at=AT,
        contact=Party(phone="+5511999990001"),
        text="oi",
    )
    mid, conv, contact = uuid4(), uuid4(), uuid4()
    first = events.message_received(
        SRC, "message/0", message_id=mid, conversation_id=conv, contact_id=contact, message=message
    )
    again = events.message_received(
        SRC, "message/0", message_id=mid, conversation_id=conv, contact_id=contact, message=message
    )
    assert first.id == again.id == ids.event_id(SRC.id, "message/0")
    assert (first.causation_id, first.correlation_id) == (SRC.id, SRC.correlation_id)
    assert (first.channel_id, first.provider) == ("ch-1", "meta")
    assert subject_for(first) == "zf.messages.received.v1.acme"


def test_status_and_conversation_events() -> None:
    changed = events.status_changed(
        SRC,
        "status/2",
        message_id=uuid4(),
        provider_message_id="w",
        conversation_id=uuid4(),
        status=DeliveryStatus.READ,
        previous=DeliveryStatus.SENT,
        at=AT,
    )
    assert subject_for(changed) == "zf.messages.status_changed.v1.acme"
    opened = events.conversation_opened(
        SRC, "message/0/conversation", conversation_id=uuid4(), contact_id=uuid4(), previous=None
    )
    assert (opened.status, opened.previous) == ("open", None)
    assert opened.changed_by is not None
    assert opened.changed_by.kind == "customer"
