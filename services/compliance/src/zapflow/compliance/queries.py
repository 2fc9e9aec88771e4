"""Request-reply queries compliance answers over core NATS (queue group ``compliance``).

Interim home: these models move to ``zapflow.contracts.queries.compliance_v1`` (the lead's call).

The subjects live under ``zf.query.compliance.…``, not ``zf.compliance.…``: the ``ZF_COMPLIANCE``
command stream captures ``zf.compliance.>``, and JetStream would store a request sent there and
answer it with a publish acknowledgement before compliance could reply.

Every reply is the reply model or a :class:`QueryError` (bad request, unknown subject).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from uuid import UUID

from pydantic import Field

from zapflow.compliance.domain import Outcome, TenantRules
from zapflow.contracts.common import Actor
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.envelope import Contract
from zapflow.contracts.types import ChannelId, TenantId

DECISION: Final = "zf.query.compliance.decision.v1"
"""The decision on one message: ``DecisionQuery`` → ``DecisionReply``."""
RULES: Final = "zf.query.compliance.rules.v1"
"""A tenant's rules: ``RulesQuery`` → ``RulesReply``."""
PUT_RULES: Final = "zf.query.compliance.put_rules.v1"
"""Replace a tenant's rules (omitted fields take defaults): ``PutRules`` → ``RulesReply``."""
CONSENT: Final = "zf.query.compliance.consent.v1"
"""A contact's consent in force on a channel: ``ConsentQuery`` → ``ConsentReply``."""
QUEUE_GROUP: Final = "compliance"


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


class QueryError(Contract):
    error: str
