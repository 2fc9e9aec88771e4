"""Channel events, rule and decision lookups, the query subjects, the scheduler round."""

from __future__ import annotations

import asyncio
from datetime import time, timedelta
from uuid import uuid4

from zapflow.compliance import handlers
from zapflow.compliance.adapters.memory import ManualClock, MemoryStore, RecordingPublisher
from zapflow.compliance.domain import TenantRules
from zapflow.compliance.scheduler import Scheduler
from zapflow.contracts.channels.v1 import (
    ChannelDisabled,
    ChannelPolicy,
    ChannelRegistered,
    ChannelSettings,
    ChannelUpdated,
    PaceSettings,
)
from zapflow.contracts.queries import compliance_v1 as queries

TENANT, CHANNEL = "acme", "ch-1"


def settings(cap: int | None = None, **policy: object) -> ChannelSettings:
    return ChannelSettings(
        channel_id=CHANNEL,
        provider="evolution",
        pace=PaceSettings(rate_per_second=1, daily_cap=cap),
        policy=ChannelPolicy.model_validate(policy),
    )


async def test_channel_events_keep_the_latest_settings_and_the_first_registration(
    store: MemoryStore, clock: ManualClock
) -> None:
    registered_at = clock.now()
    later = registered_at + timedelta(days=2)
    updated = ChannelUpdated(tenant_id=TENANT, occurred_at=later, channel=settings(cap=1000))
    registered = ChannelRegistered(
        tenant_id=TENANT, occurred_at=registered_at, channel=settings(cap=250)
    )
    await handlers.apply_channel_event(updated, store=store)  # replayed out of order
    await handlers.apply_channel_event(registered, store=store)
    async with store.unit() as uow:
        state = await uow.channel(TENANT, CHANNEL)
    assert state is not None
    assert (state.daily_cap, state.registered_at) == (1000, registered_at)

    disabled = ChannelDisabled(
        tenant_id=TENANT, occurred_at=later + timedelta(hours=1), channel_id=CHANNEL
    )
    await handlers.apply_channel_event(disabled, store=store)
    async with store.unit() as uow:
        off = await uow.channel(TENANT, CHANNEL)
    assert off is not None
    assert off.enabled is False


async def test_rules_default_until_set(store: MemoryStore, clock: ManualClock) -> None:
    default = await handlers.get_rules(queries.RulesQuery(tenant_id=TENANT), store=store)
    assert default.is_default
    assert default.rules == TenantRules()
    rules = TenantRules(quiet_hours_start=time(21), quiet_hours_end=time(8))
    await handlers.put_rules(
        queries.PutRules(tenant_id=TENANT, rules=rules), store=store, clock=clock
    )
    got = await handlers.get_rules(queries.RulesQuery(tenant_id=TENANT), store=store)
    assert (got.rules, got.is_default, got.updated_at) == (rules, False, clock.now())
    other = await handlers.get_rules(queries.RulesQuery(tenant_id="other"), store=store)
    assert other.is_default


async def test_an_unknown_decision_is_reported_as_not_found(store: MemoryStore) -> None:
    query = queries.DecisionQuery(tenant_id=TENANT, message_id=uuid4())
    reply = await handlers.find_decision(query, store=store)
    assert reply.found is False
    assert reply.message_id == query.message_id


async def test_a_scheduler_round_decides_due_sends_and_stops_when_asked(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    scheduler = Scheduler(store, publish, clock, interval_s=0.01)
    assert await scheduler.tick() == 0
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 1)
