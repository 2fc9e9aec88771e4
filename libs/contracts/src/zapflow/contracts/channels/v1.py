"""Channels context v1: sending numbers, owned by the gateway.

Sender, compliance and dispatcher keep their own copy of what they need (pace, policy, provider)
from these events. Each event carries the channel's full settings, and the stream keeps the last
event per subject, so replaying it from the start rebuilds every channel. Secrets never travel
here: only ``credentials_ref``, a reference into the gateway's secret store.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from zapflow.contracts.envelope import Contract, Event
from zapflow.contracts.types import ChannelId, PhoneE164, ProviderName


class PaceSettings(Contract):
    """How fast a channel may send; the sender never exceeds it, across all replicas."""

    rate_per_second: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)
    jitter_min_s: float = Field(default=0.0, ge=0, description="Humanized extra delay, lower.")
    jitter_max_s: float = Field(default=0.0, ge=0, description="Humanized extra delay, upper.")
    pause_after_sends: int | None = Field(default=None, ge=1, description="Block size.")
    pause_min_s: float = Field(default=0.0, ge=0, description="Pause after a block, lower.")
    pause_max_s: float = Field(default=0.0, ge=0, description="Pause after a block, upper.")
    daily_cap: int | None = Field(default=None, ge=1, description="Sends per local day.")

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.jitter_min_s > self.jitter_max_s or self.pause_min_s > self.pause_max_s:
            raise ValueError("a min bound exceeds its max bound")
        return self


class ChannelPolicy(Contract):
    """Compliance settings of a channel."""

    timezone: str = Field(default="UTC", description="IANA zone for quiet hours and daily caps.")
    quiet_hours_start: time | None = None
    quiet_hours_end: time | None = None
    require_opt_in: bool = Field(default=False, description="Only send to opted-in contacts.")
    service_window_hours: int = Field(default=24, ge=1, description="Free-form reply window.")


class InDoubtPolicy(StrEnum):
    """What the sender does with a send left *in doubt* that no status resolved in its window."""

    RESEND = "resend"
    DEAD_LETTER = "dead_letter"


class InDoubtSettings(Contract):
    """A send is *in doubt* when the sender died during its provider call: the provider may or
    may not have accepted it. The sender waits ``window_s`` (from the call) for a provider status
    that names the message by Zapflow's id; one that comes records it as sent (never resent).
    Without one, ``policy`` decides. None: the sender's defaults (see the sender's README)."""

    policy: InDoubtPolicy | None = Field(
        default=None,
        description="resend or dead_letter after the window; None: resend where the provider "
        "echoes Zapflow's id in its statuses (Meta), dead_letter elsewhere.",
    )
    window_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="Seconds to wait for a status naming the message, counted from the call; "
        "None: ZF_SENDER_IN_DOUBT_WINDOW_S.",
    )


class ChannelSettings(Contract):
    """Everything other services may know about a channel; never a secret."""

    channel_id: ChannelId
    provider: ProviderName
    display_name: str | None = None
    phone: PhoneE164 | None = None
    provider_account: str | None = Field(
        default=None, description="Provider's id of the number: phone_number_id, instance name."
    )
    base_url: str | None = Field(default=None, description="Provider API base URL.")
    credentials_ref: str | None = Field(
        default=None, description="Reference to the credentials in the gateway's secret store."
    )
    provider_options: dict[str, str] = Field(
        default_factory=dict, description="Non-secret provider-specific options."
    )
    pace: PaceSettings
    policy: ChannelPolicy = Field(default_factory=ChannelPolicy)
    enabled: bool = True
    in_doubt: InDoubtSettings = Field(
        default_factory=InDoubtSettings, description="Sends whose provider call was cut short."
    )


class ChannelRegistered(Event):
    """A channel was added to a tenant."""

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id", "channel.channel_id")
    type: Literal["zf.channels.registered.v1"] = "zf.channels.registered.v1"
    channel: ChannelSettings


class ChannelUpdated(Event):
    """A channel's settings changed (pace, policy, provider details, enabled)."""

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id", "channel.channel_id")
    type: Literal["zf.channels.updated.v1"] = "zf.channels.updated.v1"
    channel: ChannelSettings
    changed: tuple[str, ...] = Field(default=(), description="Names of the settings changed.")


class ChannelDisabled(Event):
    """A channel must not send any more (sends are vetoed) until updated with ``enabled``."""

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id", "channel_id")
    type: Literal["zf.channels.disabled.v1"] = "zf.channels.disabled.v1"
    channel_id: ChannelId
    reason: str | None = None
