"""Values the decision is made from and made of: tenant rules, channel state, the decision."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zapflow.contracts.channels.v1 import ChannelSettings
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.sending.v1 import DeferReason, VetoReason

DEFAULT_OPT_OUT_KEYWORDS = (
    "STOP",
    "SAIR",
    "PARAR",
    "CANCELAR",
    "DESCADASTRAR",
    "UNSUBSCRIBE",
    "REMOVER",
    "NAO QUERO",
)
DEFAULT_OPT_IN_KEYWORDS = ("START", "VOLTAR", "UNSTOP")
DEFAULT_OPT_OUT_CONFIRMATION = (
    "Pronto: você não receberá mais mensagens deste número. Para voltar a receber, envie VOLTAR."
)
DEFAULT_OPT_IN_CONFIRMATION = (
    "Pronto: você voltará a receber nossas mensagens. Para parar, envie SAIR."
)
WEEK_S = 7 * 86_400

Keyword = str


def _check_zone(name: str | None) -> str | None:
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
    return name


class TenantRules(BaseModel):
    """A tenant's compliance configuration; every field has a default (no row = defaults).

    Fields left ``None`` defer to the channel's policy (``ChannelPolicy``), so a tenant sets a
    rule once and a channel refines it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    opt_out_keywords: tuple[Keyword, ...] = Field(default=DEFAULT_OPT_OUT_KEYWORDS, max_length=100)
    opt_in_keywords: tuple[Keyword, ...] = Field(default=DEFAULT_OPT_IN_KEYWORDS, max_length=100)
    keyword_scope: Literal["tenant", "channel"] = Field(
        default="tenant", description="A keyword opts out of every channel, or only the one used."
    )
    opt_out_confirmation: str | None = Field(
        default=DEFAULT_OPT_OUT_CONFIRMATION, max_length=1024, description="None: send nothing."
    )
    opt_in_confirmation: str | None = Field(default=DEFAULT_OPT_IN_CONFIRMATION, max_length=1024)
    require_opt_in_for_campaigns: bool | None = Field(
        default=None, description="None: the channel policy's require_opt_in."
    )
    enforce_service_window: bool = Field(
        default=True, description="Free-form only within the window (Meta enforces it too)."
    )
    service_window_hours: int | None = Field(
        default=None, ge=1, le=168, description="None: the channel policy's window."
    )
    timezone: str | None = Field(default=None, description="Default zone for quiet hours.")
    quiet_hours_start: time | None = Field(
        default=None, description="Used if the channel has none."
    )
    quiet_hours_end: time | None = None
    duplicate_interval_s: int = Field(default=3600, ge=0, le=WEEK_S, description="0: off.")
    duplicate_origins: tuple[SendOrigin, ...] = (SendOrigin.CAMPAIGN, SendOrigin.API)
    warmup_schedule: tuple[int, ...] = Field(
        default=(), description="New-recipient cap per day since registration (day 0 first)."
    )
    template_params: dict[str, int] = Field(
        default_factory=dict,
        description="Expected body parameter count per template `name` or `name:language`.",
    )
    text_max_chars: int = Field(default=4096, ge=1, le=4096)
    caption_max_chars: int = Field(default=1024, ge=1, le=1024)

    @classmethod
    def load(cls, stored: str | bytes) -> TenantRules:
        """Rules saved by an earlier version: fields it no longer knows are dropped, not refused."""
        data = json.loads(stored)
        return cls.model_validate({k: v for k, v in data.items() if k in cls.model_fields})

    @field_validator("opt_out_keywords", "opt_in_keywords")
    @classmethod
    def _keywords(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not k.strip() or len(k) > 64 for k in value):
            raise ValueError("keywords must be non-blank and at most 64 characters")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _check_zone(value)

    @field_validator("warmup_schedule")
    @classmethod
    def _warmup(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(cap < 1 for cap in value):
            raise ValueError("warm-up caps must be positive")
        return value

    @field_validator("template_params")
    @classmethod
    def _templates(cls, value: dict[str, int]) -> dict[str, int]:
        if any(count < 0 for count in value.values()):
            raise ValueError("template parameter counts must not be negative")
        return value

    @model_validator(mode="after")
    def _quiet_pair(self) -> Self:
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            raise ValueError("quiet_hours_start and quiet_hours_end go together")
        return self


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


class Outcome(StrEnum):
    APPROVED = "approved"
    VETOED = "vetoed"
    DEFERRED = "deferred"


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
