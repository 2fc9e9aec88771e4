"""Sending context v1: the life of one outbound send, from request to provider outcome.

``requested`` (gateway for operators and API, dispatcher for campaigns) → compliance decides:
``zf.sender.send_approved`` (see ``zapflow.contracts.sender.v1``), ``vetoed`` or ``deferred``
→ the sender calls the provider: ``sent`` or ``failed``. Ingest turns these into
``zf.messages.status_changed``. ``message_id`` is fixed by the requester (for campaigns, derived
from campaign and recipient), so every step is idempotent on it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from zapflow.contracts.common import Actor, SendOrigin, SendPriority
from zapflow.contracts.content import OutboundContent
from zapflow.contracts.envelope import Contract, Event
from zapflow.contracts.types import ChannelId, PhoneE164, ProviderName


class Recipient(Contract):
    """Who to send to: an E.164 phone, or the provider address when no phone is known."""

    phone: PhoneE164 | None = None
    wa_id: str | None = Field(default=None, description="Provider address (wa_id, JID, LID).")
    contact_id: UUID | None = None

    @model_validator(mode="after")
    def _addressable(self) -> Self:
        if self.phone is None and self.wa_id is None:
            raise ValueError("a recipient needs phone or wa_id")
        return self

    @property
    def address(self) -> str:
        """The key messages to this recipient are ordered by: phone, else wa_id."""
        return self.phone or self.wa_id or ""


class SendRequest(Contract):
    """Everything needed to send one message; carried unchanged through every send event."""

    message_id: UUID = Field(description="Zapflow's id of the outbound message.")
    channel_id: ChannelId
    to: Recipient
    conversation_id: UUID | None = None
    content: OutboundContent
    reply_to: str | None = Field(default=None, description="Provider id of the quoted message.")
    origin: SendOrigin
    campaign_id: UUID | None = None
    recipient_id: UUID | None = None
    idempotency_key: str = Field(min_length=1, max_length=200)
    priority: SendPriority = SendPriority.NORMAL
    requested_by: Actor | None = None
    not_after: AwareDatetime | None = Field(
        default=None, description="Give up (veto `expired`) if it cannot be sent by then."
    )

    @model_validator(mode="after")
    def _campaign_refs(self) -> Self:
        if self.origin is SendOrigin.CAMPAIGN and (
            self.campaign_id is None or self.recipient_id is None
        ):
            raise ValueError("a campaign send needs campaign_id and recipient_id")
        return self


class SendRequested(Event):
    """Someone asked to send a message; compliance has not decided yet."""

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id", "request.channel_id")
    type: Literal["zf.sending.requested.v1"] = "zf.sending.requested.v1"
    request: SendRequest


class VetoReason(StrEnum):
    """Why compliance refused a send for good."""

    OPTED_OUT = "opted_out"
    OUTSIDE_WINDOW = "outside_window"
    NO_OPT_IN = "no_opt_in"
    QUIET_HOURS = "quiet_hours"
    DAILY_CAP = "daily_cap"
    DUPLICATE = "duplicate"
    INVALID_CONTENT = "invalid_content"
    INVALID_RECIPIENT = "invalid_recipient"
    UNKNOWN_CHANNEL = "unknown_channel"
    CHANNEL_DISABLED = "channel_disabled"
    CAMPAIGN_INACTIVE = "campaign_inactive"
    EXPIRED = "expired"


class SendVetoed(Event):
    """Compliance refused a send request; it will never be sent."""

    type: Literal["zf.sending.vetoed.v1"] = "zf.sending.vetoed.v1"
    request: SendRequest
    decision_id: UUID
    reason: VetoReason
    text: str = Field(description="Human explanation for operators, without personal data.")


class DeferReason(StrEnum):
    """Why compliance postponed a send."""

    QUIET_HOURS = "quiet_hours"
    DAILY_CAP = "daily_cap"
    CHANNEL_PAUSED = "channel_paused"


class SendDeferred(Event):
    """Compliance postponed a send request; it decides again at ``until``."""

    type: Literal["zf.sending.deferred.v1"] = "zf.sending.deferred.v1"
    request: SendRequest
    decision_id: UUID
    until: AwareDatetime
    reason: DeferReason
    text: str = Field(description="Human explanation for operators, without personal data.")


class SendSucceeded(Event):
    """The provider accepted an outbound message and gave it an id (status ``sent``)."""

    type: Literal["zf.sending.sent.v1"] = "zf.sending.sent.v1"
    message_id: UUID
    channel_id: ChannelId
    provider: ProviderName
    provider_message_id: str
    attempts: int = Field(ge=1)
    sent_at: AwareDatetime


class FailureReason(StrEnum):
    """Why the sender gave up on a message, provider-neutral."""

    INVALID_RECIPIENT = "invalid_recipient"
    OUTSIDE_WINDOW = "outside_window"
    TEMPLATE_MISMATCH = "template_mismatch"
    CONTENT_REJECTED = "content_rejected"
    MEDIA_ERROR = "media_error"
    RATE_LIMITED = "rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    AUTH_FAILED = "auth_failed"
    CHANNEL_DISCONNECTED = "channel_disconnected"
    UNKNOWN = "unknown"


class SendFailed(Event):
    """The sender gave up: a permanent provider error, or retries exhausted (then dead-lettered)."""

    type: Literal["zf.sending.failed.v1"] = "zf.sending.failed.v1"
    message_id: UUID
    channel_id: ChannelId
    provider: ProviderName
    reason: FailureReason
    permanent: bool = Field(description="False when retries were exhausted on transient errors.")
    error_code: str | None = Field(default=None, description="Provider's own error code.")
    error_text: str | None = None
    attempts: int = Field(ge=1)
    failed_at: AwareDatetime
