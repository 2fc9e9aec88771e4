"""Campaigns context v1: what happened to a campaign and to each of its recipients.

Produced by the dispatcher, which owns campaigns, audiences and recipient snapshots. The commands
that drive a campaign live in ``zapflow.contracts.dispatcher.v1``.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from zapflow.contracts.common import Actor
from zapflow.contracts.envelope import Contract, Event
from zapflow.contracts.types import ChannelId


class AudienceKind(StrEnum):
    CONTACTS = "contacts"
    LIST = "list"
    SEGMENT = "segment"
    CSV = "csv"


class Audience(Contract):
    """Who a campaign goes to: explicit contacts, a saved list, a segment, or an imported CSV."""

    kind: AudienceKind
    contact_ids: tuple[UUID, ...] = ()
    list_id: str | None = None
    segment_id: str | None = None
    csv_key: str | None = Field(default=None, description="Object key of the uploaded CSV.")

    @model_validator(mode="after")
    def _matches_kind(self) -> Self:
        needed = {
            AudienceKind.CONTACTS: bool(self.contact_ids),
            AudienceKind.LIST: self.list_id is not None,
            AudienceKind.SEGMENT: self.segment_id is not None,
            AudienceKind.CSV: self.csv_key is not None,
        }
        if not needed[self.kind]:
            raise ValueError(f"audience kind {self.kind.value!r} lacks its reference")
        return self


class CampaignPace(Contract):
    """Limits a campaign adds on top of its channel's pace (it can only be slower)."""

    max_per_minute: int | None = Field(default=None, ge=1)
    window_start: time | None = Field(default=None, description="Local time sends may start.")
    window_end: time | None = Field(default=None, description="Local time sends must stop.")
    timezone: str | None = Field(default=None, description="IANA zone; channel's when None.")


class RecipientState(StrEnum):
    """State of one recipient row; ``pending`` means not yet published as a send request."""

    PENDING = "pending"
    QUEUED = "queued"
    VETOED = "vetoed"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class RecipientCounts(Contract):
    """How many recipients are in each state."""

    total: int = Field(default=0, ge=0)
    pending: int = Field(default=0, ge=0)
    queued: int = Field(default=0, ge=0)
    vetoed: int = Field(default=0, ge=0)
    sent: int = Field(default=0, ge=0)
    delivered: int = Field(default=0, ge=0)
    read: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)


class CampaignCreated(Event):
    """A campaign was defined (draft); nothing is sent until it is launched."""

    type: Literal["zf.campaigns.created.v1"] = "zf.campaigns.created.v1"
    campaign_id: UUID
    name: str
    channel_id: ChannelId
    audience_kind: AudienceKind
    start_at: AwareDatetime | None = None
    created_by: Actor | None = None


class CampaignLaunched(Event):
    """A campaign started (or was scheduled to start at ``start_at``) expanding its audience."""

    type: Literal["zf.campaigns.launched.v1"] = "zf.campaigns.launched.v1"
    campaign_id: UUID
    start_at: AwareDatetime | None = None
    recipients_total: int | None = Field(default=None, ge=0)
    launched_by: Actor | None = None


class CampaignPaused(Event):
    """A campaign stopped publishing send requests; its cursor is kept."""

    type: Literal["zf.campaigns.paused.v1"] = "zf.campaigns.paused.v1"
    campaign_id: UUID
    reason: str | None = None
    paused_by: Actor | None = None


class CampaignResumed(Event):
    """A paused campaign continues from its cursor."""

    type: Literal["zf.campaigns.resumed.v1"] = "zf.campaigns.resumed.v1"
    campaign_id: UUID
    resumed_by: Actor | None = None


class CampaignCancelled(Event):
    """A campaign was stopped for good; pending recipients will never be sent."""

    type: Literal["zf.campaigns.cancelled.v1"] = "zf.campaigns.cancelled.v1"
    campaign_id: UUID
    reason: str | None = None
    cancelled_by: Actor | None = None
    counts: RecipientCounts = Field(default_factory=RecipientCounts)


class CampaignCompleted(Event):
    """Every recipient of a campaign reached a final state."""

    type: Literal["zf.campaigns.completed.v1"] = "zf.campaigns.completed.v1"
    campaign_id: UUID
    counts: RecipientCounts


class CampaignProgress(Event):
    """A periodic snapshot of a running campaign's recipient counts."""

    type: Literal["zf.campaigns.progress.v1"] = "zf.campaigns.progress.v1"
    campaign_id: UUID
    counts: RecipientCounts


class CampaignCommandRejected(Event):
    """A campaign command could not be executed (unknown campaign, wrong state, bad audience)."""

    type: Literal["zf.campaigns.command_rejected.v1"] = "zf.campaigns.command_rejected.v1"
    campaign_id: UUID
    command_id: UUID = Field(description="Envelope id of the rejected command.")
    command_type: str
    reason: str


class RecipientStateChanged(Event):
    """One campaign recipient moved to a new state (with the reason when vetoed or failed)."""

    type: Literal["zf.campaigns.recipient_state_changed.v1"] = (
        "zf.campaigns.recipient_state_changed.v1"
    )
    campaign_id: UUID
    recipient_id: UUID
    message_id: UUID
    contact_id: UUID | None = None
    state: RecipientState
    previous: RecipientState | None = None
    reason_code: str | None = Field(default=None, description="Veto or failure reason code.")
    reason_text: str | None = None
    at: AwareDatetime
