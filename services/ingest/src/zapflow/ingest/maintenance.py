"""Retention: the periodic purge of the webhook log, the outbox and old inbox rows.

One replica at a time runs it (a PostgreSQL advisory lock); rows go in batches so no statement
holds locks for long. Messages, contacts, conversations and status history are never purged here.
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
# table, time column, key column: fixed names, never input
_TARGETS: Final = (
    ("webhook_log", "received_at", "event_id", "webhook_log_days"),
    ("outbox", "created_at", "ctid", "outbox_days"),
    ("processed_events", "processed_at", "event_id", "inbox_days"),
)


@dataclass(frozen=True)
class Retention:
    webhook_log_days: float
    outbox_days: float
    inbox_days: float


async def purge_once(pool: asyncpg.Pool, retention: Retention) -> dict[str, int]:
    """Delete rows older than their retention; returns the count per table (empty if another
    replica holds the purge lock)."""
    removed: dict[str, int] = {}
    async with pool.acquire() as conn:
        if not await conn.fetchval(_LOCK):
            return removed
        try:
            for table, at, key, setting in _TARGETS:
                days: float = getattr(retention, setting)
                removed[table] = await _purge_table(conn, table, at, key, days)
        finally:
            await conn.fetchval(_UNLOCK)
    return removed


async def _purge_table(conn: Conn, table: str, at: str, key: str, days: float) -> int:
    statement = (
        f"DELETE FROM {table} WHERE {key} IN ("
        f" SELECT {key} FROM {table} WHERE {at} < now() - make_interval(secs => $1) LIMIT $2)"
    )
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
