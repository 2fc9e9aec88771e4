"""Builders of the events ingest publishes, each derived from the raw webhook that caused it.

Every event gets a deterministic id (``ids.event_id(raw id, key)``), the raw event as its cause
and the raw event's correlation id, so a consumer can follow a message back to its webhook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from zapflow.contracts.common import Actor, ActorKind
from zapflow.contracts.contacts.v1 import ContactUpdated
from zapflow.contracts.conversations.v1 import ConversationStatus, ConversationStatusChanged
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.messages.v1 import (
    MessageEdited,
    MessageReceived,
    MessageRevoked,
    MessageStatusChanged,
)
from zapflow.contracts.model import DeliveryStatus, Message, MessageEdit, MessageRevoke, Party
from zapflow.ingest import ids


def _envelope(src: WebhookReceived, key: str) -> dict[str, Any]:
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


def status_changed(
    src: WebhookReceived,
    key: str,
    *,
    message_id: UUID,
    provider_message_id: str,
    conversation_id: UUID,
    status: DeliveryStatus,
    previous: DeliveryStatus | None,
    at: datetime,
    error_code: str | None = None,
    error_text: str | None = None,
) -> MessageStatusChanged:
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
    )


def message_edited(
    src: WebhookReceived, key: str, *, message_id: UUID, conversation_id: UUID, edit: MessageEdit
) -> MessageEdited:
    return MessageEdited(
        **_envelope(src, key),
        message_id=message_id,
        conversation_id=conversation_id,
        channel_id=src.channel_id,
        edit=edit,
    )


def message_revoked(
    src: WebhookReceived,
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
    src: WebhookReceived,
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
    src: WebhookReceived,
    key: str,
    *,
    conversation_id: UUID,
    contact_id: UUID,
    previous: ConversationStatus | None,
) -> ConversationStatusChanged:
    """A conversation was created (``previous`` None) or reopened by the customer's message."""
    return ConversationStatusChanged(
        **_envelope(src, key),
        conversation_id=conversation_id,
        contact_id=contact_id,
        channel_id=src.channel_id,
        status=ConversationStatus.OPEN,
        previous=previous,
        changed_by=Actor(kind=ActorKind.CUSTOMER, id=str(contact_id)),
    )
