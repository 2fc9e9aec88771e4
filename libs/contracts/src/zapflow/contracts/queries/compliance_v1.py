"""Queries compliance answers: a send's decision, a tenant's rules (read and replace), a contact's
consent.

Core NATS request-reply; compliance replicas answer in one queue group and only the gateway asks
(for the tenant it authenticated). Every request carries ``tenant_id`` and nothing of another
tenant is ever returned.

The subjects live under ``zf.query.compliance.`` rather than ``zf.compliance.``: the
``ZF_COMPLIANCE`` command stream captures ``zf.compliance.>``, so a request sent there would be
stored as a command and answered with a JetStream publish acknowledgement instead of the reply.

Failures use the common reply envelope of ``zapflow.contracts.queries``.

:class:`TenantRules` is the tenant's compliance configuration as compliance stores and applies it;
it is strict (unknown fields are errors), so a misspelt rule is refused rather than ignored.
"""

from __future__ import annotations

import json
from datetime import datetime, time
from enum import StrEnum
from typing import Final, Literal, Self, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zapflow.contracts.common import Actor, SendOrigin
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.envelope import Contract
from zapflow.contracts.queries import QuerySpec
from zapflow.contracts.types import ChannelId, TenantId

DEFAULT_OPT_OUT_KEYWORDS: Final = (
    "STOP",
    "SAIR",
    "PARAR",
    "CANCELAR",
    "DESCADASTRAR",
    "UNSUBSCRIBE",
    "REMOVER",
    "NAO QUERO",
)
DEFAULT_OPT_IN_KEYWORDS: Final = ("START", "VOLTAR", "UNSTOP")
DEFAULT_OPT_OUT_CONFIRMATION: Final = (
    "Pronto: você não receberá mais mensagens deste número. Para voltar a receber, envie VOLTAR."
)
DEFAULT_OPT_IN_CONFIRMATION: Final = (
    "Pronto: você voltará a receber nossas mensagens. Para parar, envie SAIR."
)
WEEK_S: Final = 7 * 86_400

Keyword = str


class Outcome(StrEnum):
    """What compliance decided about a send request."""

    APPROVED = "approved"
    VETOED = "vetoed"
    DEFERRED = "deferred"


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


# -- requests and replies ---------------------------------------------------------------------
class DecisionQuery(Contract):
    tenant_id: TenantId
    message_id: UUID


class DecisionReply(Contract):
    found: bool
    message_id: UUID
    channel_id: str | None = None
    outcome: Outcome | None = None
    reason: str | None = Field(default=None, description="Veto or defer reason code.")
    text: str | None = Field(default=None, description="Human explanation, no personal data.")
    until: datetime | None = Field(default=None, description="When a deferred send is retried.")
    decided_at: datetime | None = None
    decision_id: UUID | None = None
    evaluations: int = Field(default=0, description="Times decided (>1 after deferrals).")


class RulesQuery(Contract):
    tenant_id: TenantId


class PutRules(Contract):
    tenant_id: TenantId
    rules: TenantRules
    requested_by: Actor | None = None


class RulesReply(Contract):
    tenant_id: TenantId
    rules: TenantRules
    is_default: bool = Field(description="True when the tenant never set rules.")
    updated_at: datetime | None = None


class ConsentQuery(Contract):
    tenant_id: TenantId
    address: str = Field(min_length=1, description="E.164 phone (or provider address).")
    channel_id: ChannelId


class ConsentReply(Contract):
    state: ConsentState | None = Field(description="None: the contact never opted in or out.")
    scope_channel_id: str | None = Field(
        default=None, description="Channel of the record in force; None for every channel."
    )
    changed_at: datetime | None = None
    source: ConsentSource | None = None


_Req = TypeVar("_Req", bound=Contract)
_Rep = TypeVar("_Rep", bound=Contract)


def _query(
    name: str, request: type[_Req], reply: type[_Rep], description: str
) -> QuerySpec[_Req, _Rep]:
    return QuerySpec(
        subject=f"zf.query.compliance.{name}.v1",
        request=request,
        reply=reply,
        server="compliance",
        callers=frozenset({"gateway"}),
        description=description,
    )


DECISION: Final = _query(
    "decision", DecisionQuery, DecisionReply, "The decision on one message, and why."
)
RULES: Final = _query("rules", RulesQuery, RulesReply, "A tenant's rules.")
PUT_RULES: Final = _query(
    "put_rules", PutRules, RulesReply, "Replace a tenant's rules (omitted fields: defaults)."
)
CONSENT: Final = _query(
    "consent", ConsentQuery, ConsentReply, "A contact's consent in force on a channel."
)

QUERIES: Final = (DECISION, RULES, PUT_RULES, CONSENT)
"""Every query compliance answers."""
