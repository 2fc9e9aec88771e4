"""What the handlers need from the outside world, as Protocols; adapters implement them.

``Store.unit()`` opens one database transaction (a :class:`Unit`): everything a handler writes,
its outbox events included, commits together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from zapflow.compliance.domain import ChannelState, ConsentRecord, Outcome, TenantRules
from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import SendRequest


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """The current decision on a message, as kept in ``decisions``."""

    message_id: UUID
    tenant_id: str
    channel_id: str
    decision_id: UUID
    seq: int
    outcome: Outcome
    reason: str | None
    text: str
    until: datetime | None
    decided_at: datetime
    request: SendRequest
    request_event_id: UUID
    correlation_id: UUID | None


@dataclass(frozen=True, slots=True)
class Usage:
    """A channel's daily counter and what it already holds about one recipient and content."""

    recipients_today: int
    recipient_counted_today: bool
    last_same_content_at: datetime | None


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """What deciding one request reads, fetched together (``Unit.decision_facts``).

    The daily counter is given for each day asked: the channel's local day depends on its zone,
    which is read in the same go.
    """

    decided: bool
    rules: TenantRules
    channel: ChannelState | None
    consents: list[ConsentRecord]
    last_inbound_at: datetime | None
    recipients: dict[date, int]
    counted_days: frozenset[date]
    last_same_content_at: datetime | None
    campaign_cancelled: bool
    is_confirmation: bool


@dataclass(frozen=True, slots=True)
class ApprovedSend:
    """What an approval adds to the usage tables (``Unit.record_send``)."""

    day: date
    address: str
    fingerprint: str
    new_recipient: bool


@dataclass(frozen=True, slots=True)
class DueSend:
    message_id: UUID
    tenant_id: str
    channel_id: str


@dataclass(frozen=True, slots=True)
class OutboxItem:
    event_id: UUID
    subject: str
    type: str
    payload: str


class Clock(Protocol):
    def now(self) -> datetime: ...


class Publisher(Protocol):
    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> object: ...


class Unit(Protocol):
    """One transaction over compliance's tables."""

    async def claim_event(self, event_id: UUID, consumer: str) -> bool:
        """Record ``event_id`` as processed; False if it already was (inbox)."""

    async def lock_channel(self, tenant_id: str, channel_id: str) -> None:
        """Serialize decisions of one channel until the transaction ends."""

    async def rules(self, tenant_id: str) -> TenantRules: ...
    async def channel(self, tenant_id: str, channel_id: str) -> ChannelState | None: ...

    async def put_channel(self, tenant_id: str, channel: ChannelState, at: datetime) -> None:
        """Upsert unless a newer change was applied; keeps the earliest ``registered_at``."""

    async def disable_channel(self, tenant_id: str, channel_id: str, at: datetime) -> None: ...
    async def consents(self, tenant_id: str, addresses: Sequence[str]) -> list[ConsentRecord]: ...

    async def put_consent(self, tenant_id: str, address: str, record: ConsentRecord) -> bool:
        """Store ``record`` unless the stored one for its scope is newer; True if stored."""

    async def last_inbound(
        self, tenant_id: str, channel_id: str, addresses: Sequence[str]
    ) -> datetime | None: ...
    async def record_inbound(
        self, tenant_id: str, channel_id: str, addresses: Sequence[str], at: datetime
    ) -> None: ...
    async def decision(self, message_id: UUID) -> StoredDecision | None: ...
    async def save_decision(self, decision: StoredDecision) -> None: ...
    async def usage(
        self, tenant_id: str, channel_id: str, day: date, address: str, fingerprint: str
    ) -> Usage: ...

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
        """Remember an approval: content fingerprint, and the recipient in today's counter."""

    async def defer(self, decision: StoredDecision) -> None:
        """Keep a deferred send until ``decision.until``."""

    async def take_deferred(self, message_id: UUID, now: datetime) -> bool:
        """Remove a deferred send that is due and not taken by another replica; True if taken."""

    async def decision_facts(
        self,
        tenant_id: str,
        request: SendRequest,
        *,
        addresses: Sequence[str],
        days: Sequence[date],
        fingerprint: str,
    ) -> DecisionFacts:
        """Whether ``request`` is decided, and the state deciding it reads, in one go: what
        ``decision``, ``rules``, ``channel``, ``consents``, ``last_inbound``, ``usage`` (for each
        of ``days``), ``campaign_cancelled`` and ``is_confirmation`` would return."""

    async def record_decision(
        self,
        decision: StoredDecision,
        send: ApprovedSend | None,
        *,
        caused_by: str,
        subject: str,
        event: Event,
    ) -> None:
        """In one go: ``save_decision``; ``record_send`` of ``send`` (an approval) at
        ``decided_at``; ``defer`` when the outcome is deferred; ``enqueue`` of ``event``."""

    async def is_confirmation(self, tenant_id: str, message_id: UUID) -> bool: ...
    async def add_confirmation(self, tenant_id: str, message_id: UUID) -> None: ...
    async def campaign_cancelled(self, tenant_id: str, campaign_id: UUID) -> bool: ...

    async def cancel_campaign(self, tenant_id: str, campaign_id: UUID, at: datetime) -> None:
        """Record the cancellation and make the campaign's deferred sends due now."""

    async def enqueue(self, caused_by: str, subject: str, event: Event) -> None:
        """Add ``event`` to the outbox (once per event id)."""


class Store(Protocol):
    def unit(self) -> AbstractAsyncContextManager[Unit]: ...
    async def due(self, now: datetime, limit: int) -> list[DueSend]: ...

    async def unpublished(
        self, *, caused_by: str | None = None, older_than_s: float = 0.0, limit: int = 500
    ) -> list[OutboxItem]:
        """Outbox events not yet published, oldest first."""

    async def mark_published(self, event_ids: Sequence[UUID], at: datetime) -> None: ...

    async def mark_published_soon(self, event_ids: Sequence[UUID], at: datetime) -> None:
        """Like ``mark_published``, but the mark may be written a little later (with the next
        decision, or before the next ``unpublished``): until then a sweep of another replica may
        publish them again, which JetStream de-duplicates by event id."""

    async def write_marks(self) -> None:
        """Write what ``mark_published_soon`` still holds (on shutdown)."""

    async def find_decision(self, tenant_id: str, message_id: UUID) -> StoredDecision | None: ...

    async def find_rules(self, tenant_id: str) -> tuple[TenantRules, datetime] | None:
        """The tenant's stored rules and when they changed; None when it uses the defaults."""

    async def put_rules(self, tenant_id: str, rules: TenantRules, at: datetime) -> None: ...
    async def find_consents(
        self, tenant_id: str, addresses: Sequence[str]
    ) -> list[ConsentRecord]: ...

    async def prune(self, now: datetime) -> None:
        """Forget what no rule can need any more (old counters, fingerprints, outbox rows)."""
