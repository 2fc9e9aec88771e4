"""Answers to the request-reply queries (read-only, except setting a tenant's rules)."""

from __future__ import annotations

from zapflow.compliance.domain import TenantRules, effective_consent
from zapflow.compliance.ports import Clock, Store
from zapflow.contracts.queries.compliance_v1 import (
    ConsentQuery,
    ConsentReply,
    DecisionQuery,
    DecisionReply,
    PutRules,
    RulesQuery,
    RulesReply,
)


async def find_decision(query: DecisionQuery, *, store: Store) -> DecisionReply:
    found = await store.find_decision(query.tenant_id, query.message_id)
    if found is None:
        return DecisionReply(found=False, message_id=query.message_id)
    return DecisionReply(
        found=True,
        message_id=found.message_id,
        channel_id=found.channel_id,
        outcome=found.outcome,
        reason=found.reason,
        text=found.text,
        until=found.until,
        decided_at=found.decided_at,
        decision_id=found.decision_id,
        evaluations=found.seq,
    )


async def get_rules(query: RulesQuery, *, store: Store) -> RulesReply:
    found = await store.find_rules(query.tenant_id)
    if found is None:
        return RulesReply(tenant_id=query.tenant_id, rules=TenantRules(), is_default=True)
    rules, at = found
    return RulesReply(tenant_id=query.tenant_id, rules=rules, is_default=False, updated_at=at)


async def put_rules(command: PutRules, *, store: Store, clock: Clock) -> RulesReply:
    now = clock.now()
    await store.put_rules(command.tenant_id, command.rules, now)
    return RulesReply(
        tenant_id=command.tenant_id, rules=command.rules, is_default=False, updated_at=now
    )


async def find_consent(query: ConsentQuery, *, store: Store) -> ConsentReply:
    records = await store.find_consents(query.tenant_id, [query.address])
    record = effective_consent(records, query.channel_id)
    if record is None:
        return ConsentReply(state=None)
    return ConsentReply(
        state=record.state,
        scope_channel_id=record.channel_id,
        changed_at=record.changed_at,
        source=record.source,
    )
