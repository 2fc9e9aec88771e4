"""In-memory adapters for tests and experiments: a ``Store`` with the PostgreSQL adapter's
semantics, a clock that moves only when told, and a publisher that records.

A unit of work runs on a copy of the tables and swaps it in on success, so an exception inside
``unit()`` leaves nothing behind, like a rolled-back transaction.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from uuid import UUID

from zapflow.compliance.domain import ChannelState, ConsentRecord, Outcome, TenantRules
from zapflow.compliance.ports import (
    ApprovedSend,
    Clock,
    DecisionFacts,
    DueSend,
    OutboxItem,
    Publisher,
    Store,
    StoredDecision,
    Usage,
)
from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import SendRequest

Key = tuple[str, ...]


@dataclass
class Tables:
    processed: set[UUID] = field(default_factory=set)
    rules: dict[str, tuple[TenantRules, datetime]] = field(default_factory=dict)
    channels: dict[Key, tuple[ChannelState, datetime]] = field(default_factory=dict)
    consents: dict[Key, ConsentRecord] = field(default_factory=dict)
    windows: dict[Key, datetime] = field(default_factory=dict)
    decisions: dict[UUID, StoredDecision] = field(default_factory=dict)
    counters: dict[tuple[str, str, date], set[str]] = field(default_factory=dict)
    contents: dict[Key, datetime] = field(default_factory=dict)
    deferred: dict[UUID, StoredDecision] = field(default_factory=dict)
    confirmations: set[tuple[str, UUID]] = field(default_factory=set)
    cancelled: set[tuple[str, UUID]] = field(default_factory=set)
    outbox: dict[UUID, tuple[str, str, Event, datetime | None]] = field(default_factory=dict)


class MemoryUnit:
    def __init__(self, tables: Tables) -> None:
        self.t = tables

    async def claim_event(self, event_id: UUID, consumer: str) -> bool:
        fresh = event_id not in self.t.processed
        self.t.processed.add(event_id)
        return fresh

    async def lock_channel(self, tenant_id: str, channel_id: str) -> None:
        return None

    async def rules(self, tenant_id: str) -> TenantRules:
        found = self.t.rules.get(tenant_id)
        return found[0] if found else TenantRules()

    async def channel(self, tenant_id: str, channel_id: str) -> ChannelState | None:
        found = self.t.channels.get((tenant_id, channel_id))
        return found[0] if found else None

    async def put_channel(self, tenant_id: str, channel: ChannelState, at: datetime) -> None:
        key = (tenant_id, channel.channel_id)
        old = self.t.channels.get(key)
        if old is None or old[1] <= at:
            self.t.channels[key] = (channel, at)
        state, updated = self.t.channels[key]
        first = min(channel.registered_at, old[0].registered_at) if old else state.registered_at
        self.t.channels[key] = (replace(state, registered_at=first), updated)

    async def disable_channel(self, tenant_id: str, channel_id: str, at: datetime) -> None:
        old = self.t.channels.get((tenant_id, channel_id))
        if old is not None and old[1] <= at:
            self.t.channels[(tenant_id, channel_id)] = (replace(old[0], enabled=False), at)

    async def consents(self, tenant_id: str, addresses: Sequence[str]) -> list[ConsentRecord]:
        return [r for (t, a, _), r in self.t.consents.items() if t == tenant_id and a in addresses]

    async def put_consent(self, tenant_id: str, address: str, record: ConsentRecord) -> bool:
        key = (tenant_id, address, record.channel_id or "")
        old = self.t.consents.get(key)
        if old is not None and old.changed_at >= record.changed_at:
            return False
        self.t.consents[key] = record
        return True

    async def last_inbound(
        self, tenant_id: str, channel_id: str, addresses: Sequence[str]
    ) -> datetime | None:
        found = [self.t.windows.get((tenant_id, channel_id, a)) for a in addresses]
        return max((f for f in found if f is not None), default=None)

    async def record_inbound(
        self, tenant_id: str, channel_id: str, addresses: Sequence[str], at: datetime
    ) -> None:
        for a in addresses:
            old = self.t.windows.get((tenant_id, channel_id, a))
            self.t.windows[(tenant_id, channel_id, a)] = max(at, old) if old else at

    async def decision(self, message_id: UUID) -> StoredDecision | None:
        return self.t.decisions.get(message_id)

    async def save_decision(self, decision: StoredDecision) -> None:
        self.t.decisions[decision.message_id] = decision

    async def usage(
        self, tenant_id: str, channel_id: str, day: date, address: str, fingerprint: str
    ) -> Usage:
        today = self.t.counters.get((tenant_id, channel_id, day), set())
        last = self.t.contents.get((tenant_id, channel_id, address, fingerprint))
        return Usage(len(today), address in today, last)

    async def record_send(
        self,
        tenant_id: str,
        channel_id: str,
        day: date,
        address: str,
        fingerprint: str,
        at: datetime,
        *,
        new_recipient: bool,
    ) -> None:
        self.t.contents[(tenant_id, channel_id, address, fingerprint)] = at
        if new_recipient:
            self.t.counters.setdefault((tenant_id, channel_id, day), set()).add(address)

    async def defer(self, decision: StoredDecision) -> None:
        self.t.deferred[decision.message_id] = decision

    async def take_deferred(self, message_id: UUID, now: datetime) -> bool:
        found = self.t.deferred.get(message_id)
        if found is None or found.until is None or found.until > now:
            return False
        del self.t.deferred[message_id]
        return True

    async def decision_facts(
        self,
        tenant_id: str,
        request: SendRequest,
        *,
        addresses: Sequence[str],
        days: Sequence[date],
        fingerprint: str,
    ) -> DecisionFacts:
        req = request
        usage = {
            day: await self.usage(tenant_id, req.channel_id, day, req.to.address, fingerprint)
            for day in days
        }
        return DecisionFacts(
            decided=await self.decision(req.message_id) is not None,
            rules=await self.rules(tenant_id),
            channel=await self.channel(tenant_id, req.channel_id),
            consents=await self.consents(tenant_id, addresses),
            last_inbound_at=await self.last_inbound(tenant_id, req.channel_id, addresses),
            recipients={day: u.recipients_today for day, u in usage.items() if u.recipients_today},
            counted_days=frozenset(day for day, u in usage.items() if u.recipient_counted_today),
            last_same_content_at=self.t.contents.get(
                (tenant_id, req.channel_id, req.to.address, fingerprint)
            ),
            campaign_cancelled=req.campaign_id is not None
            and await self.campaign_cancelled(tenant_id, req.campaign_id),
            is_confirmation=await self.is_confirmation(tenant_id, req.message_id),
        )

    async def record_decision(
        self,
        decision: StoredDecision,
        send: ApprovedSend | None,
        *,
        caused_by: str,
        subject: str,
        event: Event,
    ) -> None:
        d = decision
        await self.save_decision(d)
        if send is not None:
            await self.record_send(
                d.tenant_id, d.channel_id, send.day, send.address, send.fingerprint,
                d.decided_at, new_recipient=send.new_recipient,
            )  # fmt: skip
        if d.outcome is Outcome.DEFERRED:
            await self.defer(d)
        await self.enqueue(caused_by, subject, event)

    async def is_confirmation(self, tenant_id: str, message_id: UUID) -> bool:
        return (tenant_id, message_id) in self.t.confirmations

    async def add_confirmation(self, tenant_id: str, message_id: UUID) -> None:
        self.t.confirmations.add((tenant_id, message_id))

    async def campaign_cancelled(self, tenant_id: str, campaign_id: UUID) -> bool:
        return (tenant_id, campaign_id) in self.t.cancelled

    async def cancel_campaign(self, tenant_id: str, campaign_id: UUID, at: datetime) -> None:
        self.t.cancelled.add((tenant_id, campaign_id))
        for mid, d in list(self.t.deferred.items()):
            if d.tenant_id == tenant_id and d.request.campaign_id == campaign_id:
                self.t.deferred[mid] = replace(d, until=min(d.until or at, at))

    async def enqueue(self, caused_by: str, subject: str, event: Event) -> None:
        self.t.outbox.setdefault(event.id, (caused_by, subject, event, None))


class MemoryStore:
    """``ports.Store`` in memory; ``tables`` is there to inspect."""

    def __init__(self) -> None:
        self.tables = Tables()

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[MemoryUnit]:
        work = copy.deepcopy(self.tables)
        yield MemoryUnit(work)
        self.tables = work

    async def due(self, now: datetime, limit: int) -> list[DueSend]:
        due = [d for d in self.tables.deferred.values() if d.until is not None and d.until <= now]
        due.sort(key=lambda d: d.until or now)
        return [DueSend(d.message_id, d.tenant_id, d.channel_id) for d in due[:limit]]

    async def unpublished(
        self, *, caused_by: str | None = None, older_than_s: float = 0.0, limit: int = 500
    ) -> list[OutboxItem]:
        return [
            OutboxItem(event.id, subject, event.type, event.model_dump_json())
            for cause, subject, event, published in self.tables.outbox.values()
            if published is None and caused_by in (None, cause)
        ][:limit]

    async def mark_published(self, event_ids: Sequence[UUID], at: datetime) -> None:
        for event_id in event_ids:
            cause, subject, event, _ = self.tables.outbox[event_id]
            self.tables.outbox[event_id] = (cause, subject, event, at)

    async def mark_published_soon(self, event_ids: Sequence[UUID], at: datetime) -> None:
        await self.mark_published(event_ids, at)

    async def write_marks(self) -> None:
        return None

    async def find_decision(self, tenant_id: str, message_id: UUID) -> StoredDecision | None:
        found = self.tables.decisions.get(message_id)
        return found if found is not None and found.tenant_id == tenant_id else None

    async def find_rules(self, tenant_id: str) -> tuple[TenantRules, datetime] | None:
        return self.tables.rules.get(tenant_id)

    async def put_rules(self, tenant_id: str, rules: TenantRules, at: datetime) -> None:
        self.tables.rules[tenant_id] = (rules, at)

    async def find_consents(self, tenant_id: str, addresses: Sequence[str]) -> list[ConsentRecord]:
        return await MemoryUnit(self.tables).consents(tenant_id, addresses)

    async def prune(self, now: datetime) -> None:
        horizon = now.date() - timedelta(days=3)
        self.tables.counters = {k: v for k, v in self.tables.counters.items() if k[2] >= horizon}


class ManualClock:
    """``ports.Clock`` that moves only when told to."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


class RecordingPublisher:
    """``ports.Publisher`` that records; ``fail`` makes the next N publishes raise."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Event]] = []
        self.fail = 0

    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> object:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("publish failed")
        self.sent.append((subject, event))
        return None

    def of(self, type_name: str) -> list[Event]:
        """Events of one type, in publish order."""
        return [event for _, event in self.sent if event.type == type_name]


def as_store(store: MemoryStore) -> Store:
    """``store`` typed as the port (mypy checks the adapter satisfies it)."""
    return store


def as_clock(clock: ManualClock) -> Clock:
    return clock


def as_publisher(publisher: RecordingPublisher) -> Publisher:
    return publisher
