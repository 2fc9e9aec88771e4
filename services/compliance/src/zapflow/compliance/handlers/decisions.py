"""Deciding send requests, and deciding deferred ones again when they are due."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

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
from zapflow.compliance.handlers.outbox import flush_outbox, publish_enqueued
from zapflow.compliance.ports import (
    ApprovedSend,
    Clock,
    DecisionFacts,
    Publisher,
    Store,
    StoredDecision,
    Unit,
)
from zapflow.contracts.envelope import Event
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
    enqueued: tuple[str, Event] | None = None
    async with store.unit() as uow:
        await uow.lock_channel(evt.tenant_id, req.channel_id)
        facts = await _facts(uow, evt.tenant_id, req, now)
        if not facts.decided:
            state = await _state(uow, facts, tenant_id=evt.tenant_id, req=req, now=now)
            if state.channel is None and now - evt.occurred_at < unknown_channel_grace:
                # its registration may still be on the way through another consumer; retry a few
                # times across the grace period (well within the consumer's max_deliver)
                wait = max(1.0, unknown_channel_grace.total_seconds() / 5)
                raise TransientError(
                    "channel not known yet", code="unknown_channel", retry_after=wait
                )
            cause = Cause(evt.id, evt.correlation_id)
            decision = decide(req, state, now)
            enqueued = await _record(
                uow, evt.tenant_id, req, decision, state, seq=1, now=now, cause=cause
            )
    if enqueued is None:  # a redelivery: publish whatever an earlier attempt left pending
        await flush_outbox(store, publish, clock, caused_by=str(req.message_id))
    else:  # a first decision: its event is the only one of its cause, no need to read it back
        await publish_enqueued(store, publish, clock, [enqueued])


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
        # read back: an earlier event of this message still unpublished goes out first
        await flush_outbox(store, publish, clock, caused_by=str(item.message_id))
    return len(due)


async def load_state(uow: Unit, tenant_id: str, req: SendRequest, now: datetime) -> DecisionState:
    """What ``decide`` needs to know about ``req``, read in the decision's transaction."""
    facts = await _facts(uow, tenant_id, req, now)
    return await _state(uow, facts, tenant_id=tenant_id, req=req, now=now)


async def _facts(uow: Unit, tenant_id: str, req: SendRequest, now: datetime) -> DecisionFacts:
    return await uow.decision_facts(
        tenant_id,
        req,
        addresses=recipient_addresses(req.to),
        days=_around(now),
        fingerprint=content_fingerprint(req.content),
    )


def _around(now: datetime) -> list[date]:
    """The days any channel's local day may be at ``now``: UTC's, and the ones either side.

    The channel (and so its zone) is read with the counters, so counters of all three are read.
    """
    utc_day = local_day(None, now)
    return [utc_day + timedelta(days=d) for d in (-1, 0, 1)]


async def _state(
    uow: Unit, facts: DecisionFacts, *, tenant_id: str, req: SendRequest, now: datetime
) -> DecisionState:
    consent = effective_consent(facts.consents, req.channel_id)
    day = local_day(facts.channel, now)
    recipients, counted = facts.recipients.get(day, 0), day in facts.counted_days
    if day not in _around(now):  # cannot happen (zone offsets are under a day); kept exact
        usage = await uow.usage(
            tenant_id, req.channel_id, day, req.to.address, content_fingerprint(req.content)
        )
        recipients, counted = usage.recipients_today, usage.recipient_counted_today
    return DecisionState(
        rules=facts.rules,
        channel=facts.channel,
        consent=consent.state if consent else None,
        last_inbound_at=facts.last_inbound_at,
        recipients_today=recipients,
        recipient_counted_today=counted,
        last_same_content_at=facts.last_same_content_at,
        campaign_cancelled=facts.campaign_cancelled,
        is_confirmation=facts.is_confirmation,
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
) -> tuple[str, Event]:
    """Save ``decision`` with its effects and its event in the outbox; returns the event."""
    stored = StoredDecision(
        message_id=req.message_id, tenant_id=tenant_id, channel_id=req.channel_id,
        decision_id=ids.decision_id(req.message_id, seq), seq=seq, outcome=decision.outcome,
        reason=decision.reason.value if decision.reason else None, text=decision.text,
        until=decision.until, decided_at=now, request=req, request_event_id=cause.event_id,
        correlation_id=cause.correlation_id,
    )  # fmt: skip
    send = None
    if decision.outcome is Outcome.APPROVED:
        send = ApprovedSend(
            day=local_day(state.channel, now), address=req.to.address,
            fingerprint=content_fingerprint(req.content), new_recipient=decision.counts_recipient,
        )  # fmt: skip
    subject, event = decision_event(tenant_id, req, decision, seq=seq, at=now, cause=cause)
    await uow.record_decision(
        stored, send, caused_by=str(req.message_id), subject=subject, event=event
    )
    logger.info(
        "send %s",
        decision.outcome.value,
        extra={"message_id": str(req.message_id), "tenant_id": tenant_id, "reason": stored.reason},
    )
    return subject, event
