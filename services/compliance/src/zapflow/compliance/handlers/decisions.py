"""Deciding send requests, and deciding deferred ones again when they are due."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from zapflow.compliance import ids
from zapflow.compliance.domain import (
    Decision,
    DecisionState,
    Outcome,
    content_fingerprint,
    decide,
    effective_consent,
    local_day,
)
from zapflow.compliance.events import Cause, decision_event
from zapflow.compliance.handlers.outbox import flush_outbox
from zapflow.compliance.ports import Clock, Publisher, Store, StoredDecision, Unit
from zapflow.contracts.errors import TransientError
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested

logger = logging.getLogger(__name__)


def recipient_addresses(to: Recipient) -> list[str]:
    """Every address a contact's consent and window may be recorded under."""
    return list(dict.fromkeys(a for a in (to.phone, to.wa_id) if a))


async def decide_request(
    evt: SendRequested,
    *,
    store: Store,
    publish: Publisher,
    clock: Clock,
    unknown_channel_grace: timedelta = timedelta(seconds=30),
) -> None:
    """Decide ``evt`` once per message id; a redelivery only re-publishes what is pending."""
    req, now = evt.request, clock.now()
    async with store.unit() as uow:
        await uow.lock_channel(evt.tenant_id, req.channel_id)
        if await uow.decision(req.message_id) is None:
            state = await load_state(uow, evt.tenant_id, req, now)
            if state.channel is None and now - evt.occurred_at < unknown_channel_grace:
                # its registration may still be on the way through another consumer; retry a few
                # times across the grace period (well within the consumer's max_deliver)
                wait = max(1.0, unknown_channel_grace.total_seconds() / 5)
                raise TransientError(
                    "channel not known yet", code="unknown_channel", retry_after=wait
                )
            cause = Cause(evt.id, evt.correlation_id)
            decision = decide(req, state, now)
            await _record(uow, evt.tenant_id, req, decision, state, seq=1, now=now, cause=cause)
    await flush_outbox(store, publish, clock, caused_by=str(req.message_id))


async def redecide_due(*, store: Store, publish: Publisher, clock: Clock, limit: int = 100) -> int:
    """Decide again every deferred send whose time came; returns how many were due."""
    now = clock.now()
    due = await store.due(now, limit)
    for item in due:
        async with store.unit() as uow:
            await uow.lock_channel(item.tenant_id, item.channel_id)
            prev = await uow.decision(item.message_id)
            if prev is None or not await uow.take_deferred(item.message_id, now):
                continue  # another replica took it
            state = await load_state(uow, prev.tenant_id, prev.request, now)
            decision = decide(prev.request, state, now)
            cause = Cause(prev.request_event_id, prev.correlation_id)
            await _record(
                uow, prev.tenant_id, prev.request, decision, state, seq=prev.seq + 1, now=now,
                cause=cause,
            )  # fmt: skip
        await flush_outbox(store, publish, clock, caused_by=str(item.message_id))
    return len(due)


async def load_state(uow: Unit, tenant_id: str, req: SendRequest, now: datetime) -> DecisionState:
    """What ``decide`` needs to know about ``req``, read in the decision's transaction."""
    channel = await uow.channel(tenant_id, req.channel_id)
    addresses = recipient_addresses(req.to)
    consent = effective_consent(await uow.consents(tenant_id, addresses), req.channel_id)
    day, print_ = local_day(channel, now), content_fingerprint(req.content)
    usage = await uow.usage(tenant_id, req.channel_id, day, req.to.address, print_)
    cancelled = req.campaign_id is not None and await uow.campaign_cancelled(
        tenant_id, req.campaign_id
    )
    return DecisionState(
        rules=await uow.rules(tenant_id),
        channel=channel,
        consent=consent.state if consent else None,
        last_inbound_at=await uow.last_inbound(tenant_id, req.channel_id, addresses),
        recipients_today=usage.recipients_today,
        recipient_counted_today=usage.recipient_counted_today,
        last_same_content_at=usage.last_same_content_at,
        campaign_cancelled=cancelled,
        is_confirmation=await uow.is_confirmation(tenant_id, req.message_id),
    )


async def _record(
    uow: Unit,
    tenant_id: str,
    req: SendRequest,
    decision: Decision,
    state: DecisionState,
    *,
    seq: int,
    now: datetime,
    cause: Cause,
) -> None:
    stored = StoredDecision(
        message_id=req.message_id, tenant_id=tenant_id, channel_id=req.channel_id,
        decision_id=ids.decision_id(req.message_id, seq), seq=seq, outcome=decision.outcome,
        reason=decision.reason.value if decision.reason else None, text=decision.text,
        until=decision.until, decided_at=now, request=req, request_event_id=cause.event_id,
        correlation_id=cause.correlation_id,
    )  # fmt: skip
    await uow.save_decision(stored)
    if decision.outcome is Outcome.APPROVED:
        day, print_ = local_day(state.channel, now), content_fingerprint(req.content)
        await uow.record_send(
            tenant_id, req.channel_id, day, req.to.address, print_, now,
            new_recipient=decision.counts_recipient,
        )  # fmt: skip
    elif decision.outcome is Outcome.DEFERRED:
        await uow.defer(stored)
    subject, event = decision_event(tenant_id, req, decision, seq=seq, at=now, cause=cause)
    await uow.enqueue(str(req.message_id), subject, event)
    logger.info(
        "send %s",
        decision.outcome.value,
        extra={"message_id": str(req.message_id), "tenant_id": tenant_id, "reason": stored.reason},
    )
