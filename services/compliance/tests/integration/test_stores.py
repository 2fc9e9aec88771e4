"""The PostgreSQL store and the in-memory one behave alike (the handler tests rely on it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from importlib.resources import files
from uuid import UUID, uuid4

import asyncpg
import pytest
import pytest_asyncio

from zapflow.compliance.adapters.memory import MemoryStore
from zapflow.compliance.adapters.pg import PgStore
from zapflow.compliance.domain import ChannelState, ConsentRecord, Outcome, TenantRules
from zapflow.compliance.ports import ApprovedSend, DecisionFacts, Store, StoredDecision
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.consent.v1 import ConsentSource, ContactOptedOut
from zapflow.contracts.content import TextContent
from zapflow.contracts.errors import TransientError
from zapflow.contracts.sending.v1 import Recipient, SendRequest
from zapflow.runtime import db
from zapflow.testing import unique

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 10, 12, tzinfo=UTC)
CHANNEL = "ch-1"


@pytest_asyncio.fixture(scope="module")
async def pg_store(pg_dsn: str) -> AsyncIterator[PgStore]:
    await db.migrate(pg_dsn, "compliance", files("zapflow.compliance") / "migrations")
    pool = await db.create_pool(pg_dsn, "compliance")
    yield PgStore(pool)
    await pool.close()


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryStore()
    found: Store = request.getfixturevalue("pg_store")
    return found


def channel(at: datetime, cap: int | None = None, enabled: bool = True) -> ChannelState:
    return ChannelState(
        channel_id=CHANNEL, provider="meta", timezone="UTC", quiet_hours_start=time(22),
        quiet_hours_end=time(7), require_opt_in=False, service_window_hours=24, daily_cap=cap,
        enabled=enabled, registered_at=at,
    )  # fmt: skip


def decision(tenant: str, until: datetime | None = None) -> StoredDecision:
    req = SendRequest(
        message_id=uuid4(), channel_id=CHANNEL, to=Recipient(phone="+5511999990001"),
        content=TextContent(body="oi"), origin=SendOrigin.API, idempotency_key="k",
    )  # fmt: skip
    return StoredDecision(
        message_id=req.message_id, tenant_id=tenant, channel_id=CHANNEL, decision_id=uuid4(),
        seq=1, outcome=Outcome.DEFERRED if until else Outcome.APPROVED, reason=None, text="t",
        until=until, decided_at=T0, request=req, request_event_id=uuid4(), correlation_id=None,
    )  # fmt: skip


async def test_events_are_claimed_once(store: Store) -> None:
    event_id = uuid4()
    async with store.unit() as uow:
        assert await uow.claim_event(event_id, "c")
        assert not await uow.claim_event(event_id, "c")


async def test_a_failed_unit_leaves_nothing_behind(store: Store) -> None:
    tenant, event_id = unique("t"), uuid4()

    async def fail_midway() -> None:
        async with store.unit() as uow:
            await uow.claim_event(event_id, "c")
            await uow.put_channel(tenant, channel(T0), T0)
            raise TransientError("boom")

    with pytest.raises(TransientError):
        await fail_midway()
    async with store.unit() as uow:
        assert await uow.claim_event(event_id, "c")
        assert await uow.channel(tenant, CHANNEL) is None


async def test_channels_take_the_newest_settings_and_the_oldest_registration(store: Store) -> None:
    tenant = unique("t")
    later = T0 + timedelta(days=1)
    async with store.unit() as uow:
        await uow.put_channel(tenant, channel(later, cap=1000), later)
        await uow.put_channel(tenant, channel(T0, cap=250), T0)  # older: only its date counts
        await uow.disable_channel(tenant, CHANNEL, T0)  # older than the update: ignored
        found = await uow.channel(tenant, CHANNEL)
    assert found == channel(T0, cap=1000)
    async with store.unit() as uow:
        await uow.disable_channel(tenant, CHANNEL, later + timedelta(seconds=1))
        off = await uow.channel(tenant, CHANNEL)
    assert off is not None
    assert off.enabled is False


async def test_consent_is_last_writer_wins_per_scope(store: Store) -> None:
    tenant, phone = unique("t"), "+5511999990001"
    out = ConsentRecord(None, ConsentState.OPTED_OUT, T0 + timedelta(minutes=1), ConsentSource.API)
    older = ConsentRecord(None, ConsentState.OPTED_IN, T0, ConsentSource.API)
    scoped = ConsentRecord(CHANNEL, ConsentState.OPTED_IN, T0, ConsentSource.OPERATOR)
    async with store.unit() as uow:
        assert await uow.put_consent(tenant, phone, out)
        assert not await uow.put_consent(tenant, phone, older)
        assert await uow.put_consent(tenant, phone, scoped)
        found = sorted(await uow.consents(tenant, [phone, "other"]), key=lambda r: r.changed_at)
    assert found == [scoped, out]
    assert sorted(await store.find_consents(tenant, [phone]), key=lambda r: r.changed_at) == found


async def test_windows_keep_the_latest_inbound_of_any_address(store: Store) -> None:
    tenant = unique("t")
    async with store.unit() as uow:
        await uow.record_inbound(tenant, CHANNEL, ["+551", "551"], T0)
        await uow.record_inbound(tenant, CHANNEL, ["551"], T0 - timedelta(hours=1))
        assert await uow.last_inbound(tenant, CHANNEL, ["551"]) == T0
        assert await uow.last_inbound(tenant, CHANNEL, ["+551", "x"]) == T0
        assert await uow.last_inbound(tenant, "other", ["+551"]) is None


async def test_usage_counts_new_recipients_once_and_remembers_content(store: Store) -> None:
    tenant, day = unique("t"), date(2025, 6, 10)
    async with store.unit() as uow:
        empty = await uow.usage(tenant, CHANNEL, day, "+551", "h1")
        await uow.record_send(tenant, CHANNEL, day, "+551", "h1", T0, new_recipient=True)
        await uow.record_send(tenant, CHANNEL, day, "+551", "h2", T0, new_recipient=True)
        await uow.record_send(tenant, CHANNEL, day, "+552", "h1", T0, new_recipient=False)
        used = await uow.usage(tenant, CHANNEL, day, "+551", "h1")
        other = await uow.usage(tenant, CHANNEL, day, "+552", "h3")
    assert (empty.recipients_today, empty.recipient_counted_today) == (0, False)
    assert empty.last_same_content_at is None
    assert (used.recipients_today, used.recipient_counted_today) == (1, True)
    assert used.last_same_content_at == T0
    assert (other.recipient_counted_today, other.last_same_content_at) == (False, None)


async def test_deferred_sends_are_taken_once_when_due_and_cancellation_makes_them_due(
    store: Store,
) -> None:
    tenant = unique("t")
    later = decision(tenant, until=T0 + timedelta(hours=5))
    async with store.unit() as uow:
        await uow.save_decision(later)
        await uow.defer(later)
    assert [d.message_id for d in await store.due(T0, 10) if d.tenant_id == tenant] == []
    campaign = uuid4()
    campaign_decision = decision(tenant, until=T0 + timedelta(hours=5))
    req = campaign_decision.request.model_copy(update={"campaign_id": campaign})
    campaign_decision = replace(campaign_decision, request=req)
    async with store.unit() as uow:
        await uow.save_decision(campaign_decision)
        await uow.defer(campaign_decision)
        await uow.cancel_campaign(tenant, campaign, T0)
        assert await uow.campaign_cancelled(tenant, campaign)
    due = [d.message_id for d in await store.due(T0, 1000) if d.tenant_id == tenant]
    assert due == [campaign_decision.message_id]
    async with store.unit() as uow:
        assert await uow.take_deferred(campaign_decision.message_id, T0)
        assert not await uow.take_deferred(campaign_decision.message_id, T0)
        assert not await uow.take_deferred(later.message_id, T0)
        stored = await uow.decision(later.message_id)
    assert stored == later


async def test_the_outbox_publishes_each_event_once_in_order(store: Store) -> None:
    tenant, cause = unique("t"), str(uuid4())
    events = [
        ContactOptedOut(tenant_id=tenant, phone="+5511999990001", source=ConsentSource.API)
        for _ in range(3)
    ]
    async with store.unit() as uow:
        for event in events:
            await uow.enqueue(cause, f"zf.consent.opted_out.v1.{tenant}", event)
        await uow.enqueue(cause, "ignored", events[0])  # same id: kept once
    pending = await store.unpublished(caused_by=cause)
    assert [p.event_id for p in pending] == [e.id for e in events]
    assert pending[0].subject == f"zf.consent.opted_out.v1.{tenant}"
    await store.mark_published([p.event_id for p in pending], T0)
    assert await store.unpublished(caused_by=cause) == []
    await store.prune(T0)


async def test_confirmations_are_known_per_tenant(store: Store) -> None:
    tenant, message_id = unique("t"), uuid4()
    async with store.unit() as uow:
        await uow.add_confirmation(tenant, message_id)
        assert await uow.is_confirmation(tenant, message_id)
        assert not await uow.is_confirmation("other", message_id)


def send_request(campaign_id: UUID | None = None) -> SendRequest:
    return SendRequest(
        message_id=uuid4(), channel_id=CHANNEL,
        to=Recipient(phone="+5511999990001", wa_id="5511999990001"),
        content=TextContent(body="oi"), origin=SendOrigin.API, idempotency_key="k",
        campaign_id=campaign_id,
    )  # fmt: skip


async def test_decision_facts_read_nothing_when_nothing_is_known(store: Store) -> None:
    tenant, req = unique("t"), send_request(uuid4())
    async with store.unit() as uow:
        facts = await uow.decision_facts(
            tenant,
            req,
            addresses=["+5511999990001", "5511999990001"],
            days=[date(2025, 6, 10)],
            fingerprint="h1",
        )
    assert facts == DecisionFacts(
        decided=False, rules=TenantRules(), channel=None, consents=[], last_inbound_at=None,
        recipients={}, counted_days=frozenset(), last_same_content_at=None,
        campaign_cancelled=False, is_confirmation=False,
    )  # fmt: skip


async def test_decision_facts_read_what_the_single_reads_return(store: Store) -> None:
    tenant, campaign = unique("t"), uuid4()
    day, next_day = date(2025, 6, 10), date(2025, 6, 11)
    req = send_request(campaign)
    rules = TenantRules(duplicate_interval_s=60)
    await store.put_rules(tenant, rules, T0)
    wide = ConsentRecord(None, ConsentState.OPTED_OUT, T0, ConsentSource.API)
    scoped = ConsentRecord(CHANNEL, ConsentState.OPTED_IN, T0, ConsentSource.OPERATOR)
    async with store.unit() as uow:
        await uow.put_channel(tenant, channel(T0, cap=10), T0)
        await uow.put_consent(tenant, "+5511999990001", wide)
        await uow.put_consent(tenant, "5511999990001", scoped)
        await uow.record_inbound(tenant, CHANNEL, ["5511999990001"], T0)
        await uow.record_send(tenant, CHANNEL, day, "+5511999990001", "h1", T0, new_recipient=True)
        await uow.record_send(tenant, CHANNEL, day, "+5511999990002", "h1", T0, new_recipient=True)
        await uow.record_send(
            tenant, CHANNEL, next_day, "+5511999990002", "h1", T0, new_recipient=True
        )
        await uow.add_confirmation(tenant, req.message_id)
        await uow.cancel_campaign(tenant, campaign, T0)
        await uow.save_decision(replace(decision(tenant), message_id=req.message_id))
        facts = await uow.decision_facts(
            tenant,
            req,
            addresses=["+5511999990001", "5511999990001"],
            days=[day, next_day],
            fingerprint="h1",
        )
        other = await uow.decision_facts(
            tenant, send_request(), addresses=["+5511999990001"], days=[day], fingerprint="h2"
        )
    assert (facts.decided, facts.rules, facts.channel) == (True, rules, channel(T0, cap=10))
    assert sorted(facts.consents, key=lambda r: r.channel_id or "") == [wide, scoped]
    assert facts.last_inbound_at == T0
    assert facts.recipients == {day: 2, next_day: 1}
    assert facts.counted_days == {day}
    assert facts.last_same_content_at == T0
    assert (facts.campaign_cancelled, facts.is_confirmation) == (True, True)
    assert (other.decided, other.campaign_cancelled, other.is_confirmation) == (False,) * 3
    assert (other.last_same_content_at, other.consents) == (None, [wide])


async def test_record_decision_saves_counts_defers_and_enqueues_together(store: Store) -> None:
    tenant, day = unique("t"), date(2025, 6, 10)
    approved, again = decision(tenant), decision(tenant)
    deferred = decision(tenant, until=T0 + timedelta(hours=5))
    vetoed = replace(decision(tenant), outcome=Outcome.VETOED, reason="opted_out")
    send = ApprovedSend(day=day, address="+5511999990001", fingerprint="h1", new_recipient=True)
    events = {
        d.message_id: ContactOptedOut(
            tenant_id=tenant, phone="+5511999990001", source=ConsentSource.API
        )
        for d in (approved, again, deferred, vetoed)
    }
    async with store.unit() as uow:
        for d, s in ((approved, send), (again, send), (deferred, None), (vetoed, None)):
            event = events[d.message_id]
            await uow.record_decision(
                d, s, caused_by=str(d.message_id), subject="zf.x", event=event
            )
        usage = await uow.usage(tenant, CHANNEL, day, send.address, "h1")
        assert await uow.decision(vetoed.message_id) == vetoed
        assert await uow.decision(deferred.message_id) == deferred
    assert (usage.recipients_today, usage.recipient_counted_today) == (1, True)
    assert usage.last_same_content_at == T0
    later = T0 + timedelta(hours=5)
    assert [d.message_id for d in await store.due(later, 1000) if d.tenant_id == tenant] == [
        deferred.message_id
    ]
    for d in (approved, again, deferred, vetoed):
        [pending] = await store.unpublished(caused_by=str(d.message_id))
        assert (pending.event_id, pending.subject) == (events[d.message_id].id, "zf.x")


async def test_marks_written_soon_ride_with_the_next_decision_or_the_next_sweep(
    pg_store: PgStore, pg_dsn: str
) -> None:
    tenant = unique("t")
    events = [
        ContactOptedOut(tenant_id=tenant, phone="+5511999990001", source=ConsentSource.API)
        for _ in range(2)
    ]
    async with pg_store.unit() as uow:
        for event in events:
            await uow.enqueue(tenant, "zf.x", event)
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": "compliance"})

    async def marked() -> list[bool]:
        rows = await conn.fetch(
            "SELECT published_at IS NOT NULL AS marked FROM outbox WHERE caused_by = $1"
            " ORDER BY seq",
            tenant,
        )
        return [r["marked"] for r in rows]

    try:
        await pg_store.mark_published_soon([events[0].id], T0)
        assert await marked() == [False, False]

        async def fail_after_recording() -> None:
            async with pg_store.unit() as uow:
                d = decision(tenant)
                await uow.record_decision(d, None, caused_by="c", subject="s", event=events[1])
                raise TransientError("boom")

        with pytest.raises(TransientError):
            await fail_after_recording()
        assert await marked() == [False, False]  # rolled back, and the mark given back
        d = decision(tenant)
        async with pg_store.unit() as uow:
            await uow.record_decision(d, None, caused_by="c", subject="s", event=events[1])
        assert await marked() == [True, False]
        await pg_store.mark_published_soon([events[1].id], T0)
        assert await pg_store.unpublished(caused_by=tenant) == []  # written first
        assert await marked() == [True, True]
    finally:
        await conn.close()
