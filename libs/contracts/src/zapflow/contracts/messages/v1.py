"""Messages context v1: the conversation timeline as ingest stores it.

Produced by ingest only: it owns the message store, so it alone knows a message's previous status
and maps provider ids to Zapflow ids. Send outcomes reach it as ``zf.sending.sent`` /
``zf.sending.failed`` and come out here as ``status_changed``.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from zapflow.contracts.common import Actor, SendOrigin
from zapflow.contracts.content import OutboundContent
from zapflow.contracts.envelope import Event
from zapflow.contracts.model import DeliveryStatus, Message, MessageEdit, MessageRevoke
from zapflow.contracts.types import ChannelId, ProviderName


class MessageReceived(Event):
    """A message (inbound, or an echo of one sent from the phone) was stored in a conversation."""

    type: Literal["zf.messages.received.v1"] = "zf.messages.received.v1"
    message_id: UUID
    conversation_id: UUID
    contact_id: UUID
    channel_id: ChannelId
    provider: ProviderName
    message: Message


class OutboundMessageRecorded(Event):
    """A requested outbound message entered its conversation's timeline, status ``queued``."""

    type: Literal["zf.messages.outbound_recorded.v1"] = "zf.messages.outbound_recorded.v1"
    message_id: UUID
    conversation_id: UUID
    contact_id: UUID
    channel_id: ChannelId
    content: OutboundContent
    origin: SendOrigin
    reply_to: str | None = Field(default=None, description="Provider id of the quoted message.")
    campaign_id: UUID | None = None
    recipient_id: UUID | None = None
    requested_by: Actor | None = None


class MessageStatusChanged(Event):
    """An outbound message's delivery status moved forward (never backwards)."""

    type: Literal["zf.messages.status_changed.v1"] = "zf.messages.status_changed.v1"
    message_id: UUID
    provider_message_id: str | None = Field(
        default=None, description="None until the provider accepted the message."
    )
    conversation_id: UUID
    channel_id: ChannelId
    status: DeliveryStatus
    previous: DeliveryStatus | None = None
    at: AwareDatetime = Field(description="When the provider (or compliance) reported it.")
    error_code: str | None = Field(
        default=None, description="Provider error code, or the veto/failure reason code."
    )
    error_text: str | None = None
    origin: SendOrigin | None = None
    campaign_id: UUID | None = None
    recipient_id: UUID | None = None
    client_message_id: str | None = Field(
        default=None,
        description="Set when the provider's status report echoed the id Zapflow sent with the "
        "message (Meta biz_opaque_callback_data): the provider itself names this message.",
    )


class MessageEdited(Event):
    """A stored message's text was edited by its author."""

    type: Literal["zf.messages.edited.v1"] = "zf.messages.edited.v1"
    message_id: UUID
    conversation_id: UUID
    channel_id: ChannelId
    edit: MessageEdit


class MessageRevoked(Event):
    """A stored message was deleted for everyone by its author."""

    type: Literal["zf.messages.revoked.v1"] = "zf.messages.revoked.v1"
    message_id: UUID
    conversation_id: UUID
    channel_id: ChannelId
    revoke: MessageRevoke
