"""Builders of the events ingest publishes, each derived from the input that caused it.

The cause is a raw webhook (ingest-raw) or a send event (ingest-outbound). Every event gets a
deterministic id (``ids.event_id(cause id, key)``), the input as its cause and the input's
correlation id, so a consumer can follow a message back to its webhook or request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from zapflow.contracts.common import Actor, ActorKind, SendOrigin
from zapflow.contracts.contacts.v1 import ContactUpdated
from zapflow.contracts.conversations.v1 import ConversationStatus, ConversationStatusChanged
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.messages.v1 import (
    MessageEdited,
    MessageReceived,
    MessageRevoked,
    MessageStatusChanged,
    OutboundMessageRecorded,
)
from zapflow.contracts.model import DeliveryStatus, Message, MessageEdit, MessageRevoke, Party
from zapflow.contracts.sending.v1 import SendRequest
from zapflow.ingest import ids
from zapflow.ingest.outbound import SendEvent, channel_of


class Cause(Protocol):
    """The input events derive from: its id names them; tenant and channel scope them."""

    @property
    def id(self) -> UUID: ...

    @property
    def tenant_id(self) -> str: ...

    @property
    def correlation_id(self) -> UUID | None: ...

    @property
    def channel_id(self) -> str: ...


@dataclass(frozen=True)
class SendCause:
    """A send event as a :class:`Cause` (requests and vetoes carry the channel in ``request``)."""

    id: UUID
    tenant_id: str
    correlation_id: UUID | None
    channel_id: str

    @classmethod
    def of(cls, evt: SendEvent) -> SendCause:
        return cls(evt.id, evt.tenant_id, evt.correlation_id, channel_of(evt))


@dataclass(frozen=True)
class Campaign:
    """Where an outbound message came from, repeated on each of its status events."""

    origin: SendOrigin | None = None
    campaign_id: UUID | None = None
    recipient_id: UUID | None = None


def _envelope(src: Cause, key: str) -> dict[str, Any]:
    return {
        "id": ids.event_id(src.id, key),
        "tenant_id": src.tenant_id,
        "correlation_id": src.correlation_id,
        "causation_id": src.id,
    }


def message_received(
    src: WebhookReceived,
    key: str,
    *,
    message_id: UUID,
    conversation_id: UUID,
    contact_id: UUID,
    message: Message,
) -> MessageReceived:
    return MessageReceived(
        **_envelope(src, key),
        message_id=message_id,
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel_id=src.channel_id,
        provider=src.provider,
        message=message,
    )


def outbound_recorded(
    src: Cause,
    key: str,
    *,
    conversation_id: UUID,
    contact_id: UUID,
    request: SendRequest,
) -> OutboundMessageRecorded:
    return OutboundMessageRecorded(
        **_envelope(src, key),
        message_id=request.message_id,
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel_id=request.channel_id,
        content=request.content,
        origin=request.origin,
        reply_to=request.reply_to,
        campaign_id=request.campaign_id,
        recipient_id=request.recipient_id,
        requested_by=request.requested_by,
    )


def status_changed(
    src: Cause,
    key: str,
    *,
    message_id: UUID,
    provider_message_id: str | None,
    conversation_id: UUID,
    status: DeliveryStatus,
    previous: DeliveryStatus | None,
    at: datetime,
    error_code: str | None = None,
    error_text: str | None = None,
    campaign: Campaign | None = None,
    client_message_id: str | None = None,
) -> MessageStatusChanged:
    campaign = campaign or Campaign()
    return MessageStatusChanged(
        **_envelope(src, key),
        message_id=message_id,
        provider_message_id=provider_message_id,
        conversation_id=conversation_id,
        channel_id=src.channel_id,
        status=status,
        previous=previous,
        at=at,
        error_code=error_code,
        error_text=error_text,
        origin=campaign.origin,
        campaign_id=campaign.campaign_id,
        recipient_id=campaign.recipient_id,
        client_message_id=client_message_id,
    )


def message_edited(
    src: Cause, key: str, *, message_id: UUID, conversation_id: UUID, edit: MessageEdit
) -> MessageEdited:
    return MessageEdited(
        **_envelope(src, key),
        message_id=message_id,
        conversation_id=conversation_id,
        channel_id=src.channel_id,
        edit=edit,
    )


def message_revoked(
    src: Cause,
    key: str,
    *,
    message_id: UUID,
    conversation_id: UUID,
    revoke: MessageRevoke,
) -> MessageRevoked:
    return MessageRevoked(
        **_envelope(src, key),
        message_id=message_id,
        conversation_id=conversation_id,
        channel_id=src.channel_id,
        revoke=revoke,
    )


def contact_updated(
    src: Cause,
    key: str,
    *,
    contact_id: UUID,
    party: Party,
    created: bool,
    changed: tuple[str, ...],
) -> ContactUpdated:
    return ContactUpdated(
        **_envelope(src, key),
        contact_id=contact_id,
        party=party,
        created=created,
        changed=changed,
    )


def conversation_opened(
    src: Cause,
    key: str,
    *,
    conversation_id: UUID,
    contact_id: UUID,
    previous: ConversationStatus | None,
    changed_by: Actor | None = None,
) -> ConversationStatusChanged:
    """A conversation was created (``previous`` None) or reopened by the customer's message;
    ``changed_by`` defaults to the customer (an outbound message names its requester)."""
    return ConversationStatusChanged(
        **_envelope(src, key),
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel_id=src.channel_id,
        status=ConversationStatus.OPEN,
        previous=previous,
        changed_by=changed_by or Actor(kind=ActorKind.CUSTOMER, id=str(contact_id)),
    )
