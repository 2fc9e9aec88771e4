"""Event builders: deterministic ids, causation and the subjects they land on."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from zapflow.contracts.common import Actor, ActorKind, SendOrigin
from zapflow.contracts.content import TextContent
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.model import DeliveryStatus, Direction, Message, MessageKind, Party
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested, SendSucceeded
from zapflow.contracts.subjects import subject_for
from zapflow.ingest import events, ids
from zapflow.ingest.events import Campaign, SendCause

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


def test_send_events_are_causes_named_by_their_id_and_channel() -> None:
    request = SendRequest(
        message_id=uuid4(),
        channel_id="ch-7",
        to=Recipient(phone="+5511999990001"),
        content=TextContent(body="oi"),
        origin=SendOrigin.CAMPAIGN,
        campaign_id=uuid4(),
        recipient_id=uuid4(),
        idempotency_key="k",
        requested_by=Actor(kind=ActorKind.OPERATOR, id="u-1"),
    )
    requested = SendRequested(tenant_id="acme", request=request, correlation_id=uuid4())
    cause = SendCause.of(requested)
    assert (cause.id, cause.tenant_id, cause.channel_id, cause.correlation_id) == (
        requested.id,
        "acme",
        "ch-7",
        requested.correlation_id,
    )
    recorded = events.outbound_recorded(
        cause, "recorded", conversation_id=uuid4(), contact_id=uuid4(), request=request
    )
    assert recorded.id == ids.event_id(requested.id, "recorded")
    assert recorded.causation_id == requested.id
    assert (recorded.message_id, recorded.content, recorded.origin) == (
        request.message_id,
        request.content,
        SendOrigin.CAMPAIGN,
    )
    assert (recorded.campaign_id, recorded.recipient_id, recorded.requested_by) == (
        request.campaign_id,
        request.recipient_id,
        request.requested_by,
    )
    assert subject_for(recorded) == "zf.messages.outbound_recorded.v1.acme"

    sent = SendSucceeded(
        tenant_id="acme",
        message_id=request.message_id,
        channel_id="ch-7",
        provider="meta",
        provider_message_id="wamid.A",
        attempts=1,
        sent_at=AT,
    )
    changed = events.status_changed(
        SendCause.of(sent),
        "sent",
        message_id=request.message_id,
        provider_message_id="wamid.A",
        conversation_id=uuid4(),
        status=DeliveryStatus.SENT,
        previous=DeliveryStatus.QUEUED,
        at=AT,
        campaign=Campaign(SendOrigin.CAMPAIGN, request.campaign_id, request.recipient_id),
    )
    assert changed.id == ids.event_id(sent.id, "sent")
    assert (changed.channel_id, changed.origin, changed.campaign_id, changed.recipient_id) == (
        "ch-7",
        SendOrigin.CAMPAIGN,
        request.campaign_id,
        request.recipient_id,
    )


def test_a_conversation_opened_by_a_send_names_its_requester() -> None:
    operator = Actor(kind=ActorKind.OPERATOR, id="u-1")
    opened = events.conversation_opened(
        SRC,
        "conversation",
        conversation_id=uuid4(),
        contact_id=uuid4(),
        previous=None,
        changed_by=operator,
    )
    assert opened.changed_by == operator
