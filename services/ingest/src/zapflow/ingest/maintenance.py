"""Retention: the periodic purge of the webhook log, the outbox, old inbox rows, and changes
still waiting for their message.

One replica at a time runs it (a PostgreSQL advisory lock); rows go in batches so no statement
holds locks for long. Messages, contacts, conversations and the status history of stored
messages are never purged here; receipts that never found their message (``message_id`` NULL),
pending edits/revokes and parked send outcomes go after ``pending_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Final

import asyncpg

from zapflow.ingest.adapters.pgtypes import Conn

logger = logging.getLogger(__name__)

BATCH: Final = 5000
_LOCK: Final = "SELECT pg_try_advisory_lock(hashtext('zapflow-ingest-purge'))"
_UNLOCK: Final = "SELECT pg_advisory_unlock(hashtext('zapflow-ingest-purge'))"


@dataclass(frozen=True)
class _Target:
    """A purged table: fixed SQL names, never input."""

    table: str
    at: str  # time column
    key: str  # column the batches are picked by
    setting: str  # Retention field
    only: str = "true"  # rows that may go at all

    def statement(self) -> str:
        return (
            f"DELETE FROM {self.table} WHERE {self.key} IN ("
            f" SELECT {self.key} FROM {self.table} WHERE {self.only}"
            f" AND {self.at} < now() - make_interval(secs => $1) LIMIT $2)"
        )


_TARGETS: Final = (
    _Target("webhook_log", "received_at", "event_id", "webhook_log_days"),
    _Target("outbox", "created_at", "ctid", "outbox_days"),
    _Target("processed_events", "processed_at", "event_id", "inbox_days"),
    _Target("message_status_history", "recorded_at", "id", "pending_days", "message_id IS NULL"),
    _Target("message_pending_changes", "recorded_at", "id", "pending_days"),
    _Target("outbound_pending_outcomes", "recorded_at", "ctid", "pending_days"),
)


@dataclass(frozen=True)
class Retention:
    webhook_log_days: float
    outbox_days: float
    inbox_days: float
    pending_days: float = 14.0


async def purge_once(pool: asyncpg.Pool, retention: Retention) -> dict[str, int]:
    """Delete rows older than their retention; returns the count per table (empty if another
    replica holds the purge lock)."""
    removed: dict[str, int] = {}
    async with pool.acquire() as conn:
        if not await conn.fetchval(_LOCK):
            return removed
        try:
            for target in _TARGETS:
                days: float = getattr(retention, target.setting)
                removed[target.table] = await _purge_table(conn, target.statement(), days)
        finally:
            await conn.fetchval(_UNLOCK)
    return removed


async def _purge_table(conn: Conn, statement: str, days: float) -> int:
    total = 0
    while True:
        result = await conn.execute(statement, days * 86_400, BATCH)
        count = int(result.rsplit(" ", 1)[-1])
        total += count
        if count < BATCH:
            return total


async def run_purge(
    pool: asyncpg.Pool, retention: Retention, interval_s: float, stop: asyncio.Event
) -> None:
    """Purge every ``interval_s`` until ``stop`` is set; failures are logged and retried later."""
    while not stop.is_set():
        try:
            removed = await purge_once(pool, retention)
            if any(removed.values()):
                logger.info("purged old rows", extra={"removed": removed})
        except Exception:
            logger.exception("purge failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
