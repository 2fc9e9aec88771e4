"""Commands to the dispatcher v1 (work queue): define and drive campaigns.

The gateway publishes them for operators and integrators; the dispatcher answers with
``zf.campaigns.*`` events (or ``command_rejected``). ``campaign_id`` is chosen by the caller, so
retrying a command is harmless.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from zapflow.contracts.campaigns.v1 import Audience, CampaignPace
from zapflow.contracts.common import Actor
from zapflow.contracts.content import OutboundContent
from zapflow.contracts.envelope import Event
from zapflow.contracts.types import ChannelId


class CreateCampaign(Event):
    """Define a campaign: channel, content with ``{{variable}}`` slots, audience, schedule."""

    type: Literal["zf.dispatcher.create_campaign.v1"] = "zf.dispatcher.create_campaign.v1"
    campaign_id: UUID
    name: str = Field(min_length=1, max_length=200)
    channel_id: ChannelId
    content: OutboundContent
    defaults: dict[str, str] = Field(
        default_factory=dict, description="Values for variables a recipient has no data for."
    )
    audience: Audience
    start_at: AwareDatetime | None = Field(default=None, description="None: at launch.")
    pace: CampaignPace | None = None
    requested_by: Actor


class LaunchCampaign(Event):
    """Start a campaign now, or at ``start_at``."""

    type: Literal["zf.dispatcher.launch_campaign.v1"] = "zf.dispatcher.launch_campaign.v1"
    campaign_id: UUID
    start_at: AwareDatetime | None = None
    requested_by: Actor


class PauseCampaign(Event):
    """Stop publishing a campaign's send requests, keeping its cursor."""

    type: Literal["zf.dispatcher.pause_campaign.v1"] = "zf.dispatcher.pause_campaign.v1"
    campaign_id: UUID
    reason: str | None = None
    requested_by: Actor


class ResumeCampaign(Event):
    """Continue a paused campaign from its cursor."""

    type: Literal["zf.dispatcher.resume_campaign.v1"] = "zf.dispatcher.resume_campaign.v1"
    campaign_id: UUID
    requested_by: Actor


class CancelCampaign(Event):
    """Stop a campaign for good."""

    type: Literal["zf.dispatcher.cancel_campaign.v1"] = "zf.dispatcher.cancel_campaign.v1"
    campaign_id: UUID
    reason: str | None = None
    requested_by: Actor
