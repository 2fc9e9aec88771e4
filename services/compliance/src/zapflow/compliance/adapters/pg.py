"""PostgreSQL implementation of the ports (asyncpg; the pool's search_path is ``compliance``).

Connection failures, serialization failures and deadlocks become ``TransientError``, so the
consumer retries the message later instead of dead-lettering it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

import asyncpg

from zapflow.compliance.adapters._sql import (
    DECISION_COLUMNS,
    Conn,
    PendingMarks,
    decision_from,
    fetch_consents,
)
from zapflow.compliance.adapters.pg_decisions import DecisionsSql
from zapflow.compliance.adapters.pg_facts import FactsSql
from zapflow.compliance.domain import ConsentRecord, TenantRules
from zapflow.compliance.ports import DueSend, OutboxItem, StoredDecision
from zapflow.contracts.errors import TransientError

_RETRYABLE = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    OSError,
)


class PgUnit(FactsSql, DecisionsSql):
    """One transaction (``ports.Unit``)."""

    def __init__(self, conn: Conn, marks: PendingMarks) -> None:
        self._c = conn
        self._marks = marks
        self._taken = []

    def give_back_marks(self) -> None:
        """The transaction failed: the marks it took are still to be written."""
        for event_ids, at in self._taken:
            self._marks.add(event_ids, at)
        self._taken = []


class PgStore:
    """``ports.Store`` over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._marks = PendingMarks()

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[PgUnit]:
        unit: PgUnit | None = None
        try:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    unit = PgUnit(conn, self._marks)
                    yield unit
            except BaseException:
                if unit is not None:
                    unit.give_back_marks()
                raise
        except _RETRYABLE as exc:
            raise TransientError(f"database: {type(exc).__name__}", code="database") from exc

    async def due(self, now: datetime, limit: int) -> list[DueSend]:
        rows = await self._pool.fetch(
            "SELECT message_id, tenant_id, channel_id FROM deferred_sends"
            " WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
            now,
            limit,
        )
        return [DueSend(r["message_id"], r["tenant_id"], r["channel_id"]) for r in rows]

    async def unpublished(
        self, *, caused_by: str | None = None, older_than_s: float = 0.0, limit: int = 500
    ) -> list[OutboxItem]:
        await self.write_marks()  # what this replica published is not pending any more
        rows = await self._pool.fetch(
            """
            SELECT event_id, subject, type, payload FROM outbox
            WHERE published_at IS NULL AND ($1::text IS NULL OR caused_by = $1)
              AND created_at <= clock_timestamp() - make_interval(secs => $2)
            ORDER BY seq LIMIT $3
            """,
            caused_by,
            older_than_s,
            limit,
        )
        return [OutboxItem(r["event_id"], r["subject"], r["type"], r["payload"]) for r in rows]

    async def mark_published(self, event_ids: Sequence[UUID], at: datetime) -> None:
        await self._pool.execute(
            "UPDATE outbox SET published_at = $2 WHERE event_id = ANY($1::uuid[])",
            list(event_ids),
            at,
        )

    async def mark_published_soon(self, event_ids: Sequence[UUID], at: datetime) -> None:
        self._marks.add(event_ids, at)

    async def write_marks(self) -> None:
        while True:
            event_ids, at = self._marks.take()
            if not event_ids or at is None:
                return
            try:
                await self.mark_published(event_ids, at)
            except BaseException:
                self._marks.add(event_ids, at)
                raise

    async def find_decision(self, tenant_id: str, message_id: UUID) -> StoredDecision | None:
        row = await self._pool.fetchrow(
            f"SELECT {DECISION_COLUMNS} FROM decisions WHERE message_id = $1 AND tenant_id = $2",
            message_id,
            tenant_id,
        )
        return None if row is None else decision_from(row)

    async def find_rules(self, tenant_id: str) -> tuple[TenantRules, datetime] | None:
        row = await self._pool.fetchrow(
            "SELECT rules, updated_at FROM tenant_rules WHERE tenant_id = $1", tenant_id
        )
        if row is None:
            return None
        return TenantRules.load(row["rules"]), row["updated_at"]

    async def put_rules(self, tenant_id: str, rules: TenantRules, at: datetime) -> None:
        await self._pool.execute(
            "INSERT INTO tenant_rules (tenant_id, rules, updated_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (tenant_id) DO UPDATE"
            " SET rules = excluded.rules, updated_at = excluded.updated_at",
            tenant_id,
            rules.model_dump_json(),
            at,
        )

    async def find_consents(self, tenant_id: str, addresses: Sequence[str]) -> list[ConsentRecord]:
        async with self._pool.acquire() as conn:
            return await fetch_consents(conn, tenant_id, addresses)

    async def prune(self, now: datetime) -> None:
        day = now.date()
        await self._pool.execute(
            "DELETE FROM daily_recipients WHERE local_date < $1::date - 3", day
        )
        await self._pool.execute("DELETE FROM daily_counters WHERE local_date < $1::date - 60", day)
        await self._pool.execute(
            "DELETE FROM content_sends WHERE last_at < $1::timestamptz - interval '8 days'", now
        )
        await self._pool.execute(
            "DELETE FROM outbox WHERE published_at < $1::timestamptz - interval '2 days'", now
        )
        await self._pool.execute(
            "DELETE FROM processed_events WHERE processed_at < now() - interval '45 days'"
        )
