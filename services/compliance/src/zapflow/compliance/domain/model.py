"""Values the decision is made from and made of: tenant rules, channel state, the decision.

``TenantRules`` and ``Outcome`` are part of compliance's query contract
(``zapflow.contracts.queries.compliance_v1``): they are defined there and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from zapflow.contracts.channels.v1 import ChannelSettings
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.queries.compliance_v1 import Outcome, TenantRules
from zapflow.contracts.sending.v1 import DeferReason, VetoReason

__all__ = ["ChannelState", "Decision", "DecisionState", "Outcome", "TenantRules"]


@dataclass(frozen=True, slots=True)
class ChannelState:
    """What compliance keeps of a channel, from the gateway's channel events."""

    channel_id: str
    provider: str
    timezone: str
    quiet_hours_start: time | None
    quiet_hours_end: time | None
    require_opt_in: bool
    service_window_hours: int
    daily_cap: int | None
    enabled: bool
    registered_at: datetime

    @classmethod
    def from_settings(cls, channel: ChannelSettings, registered_at: datetime) -> ChannelState:
        policy = channel.policy
        return cls(
            channel_id=channel.channel_id,
            provider=channel.provider,
            timezone=policy.timezone,
            quiet_hours_start=policy.quiet_hours_start,
            quiet_hours_end=policy.quiet_hours_end,
            require_opt_in=policy.require_opt_in,
            service_window_hours=policy.service_window_hours,
            daily_cap=channel.pace.daily_cap,
            enabled=channel.enabled,
            registered_at=registered_at,
        )


@dataclass(frozen=True, slots=True)
class DecisionState:
    """Everything ``decide`` reads besides the request and the clock."""

    rules: TenantRules
    channel: ChannelState | None
    consent: ConsentState | None = None
    last_inbound_at: datetime | None = None
    recipients_today: int = 0
    recipient_counted_today: bool = False
    last_same_content_at: datetime | None = None
    campaign_cancelled: bool = False
    is_confirmation: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one send request, with a machine-readable reason and a human text."""

    outcome: Outcome
    reason: VetoReason | DeferReason | None
    text: str
    until: datetime | None = None
    counts_recipient: bool = False
    """On approval: the recipient is new today and counts against the channel's daily cap."""

    @classmethod
    def approve(cls, text: str, *, counts_recipient: bool = False) -> Decision:
        return cls(Outcome.APPROVED, None, text, counts_recipient=counts_recipient)

    @classmethod
    def veto(cls, reason: VetoReason, text: str) -> Decision:
        return cls(Outcome.VETOED, reason, text)

    @classmethod
    def defer(cls, reason: DeferReason, until: datetime, text: str) -> Decision:
        return cls(Outcome.DEFERRED, reason, text, until=until)
