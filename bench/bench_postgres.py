"""Raw asyncpg single-row INSERT references on the run's PostgreSQL.

The row is an inbox-style event row (uuid key with ``ON CONFLICT DO NOTHING``, tenant, jsonb body),
one statement per transaction (autocommit). The server runs in ``fast`` mode (fsync and synchronous
commit off), so these are ceilings for the client and the server's CPU, not for durable commits.

* ``pg.insert.sequential``: one connection, one ``execute`` after another.
* ``pg.insert.pool``: :data:`POOL_SIZE` workers sharing a pool of :data:`POOL_SIZE` connections,
  each row through ``pool.execute`` (acquire, execute, release, as a handler would); compared with
  the sequential figure.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Final

import asyncpg

from bench.context import Context
from bench.payloads import WEBHOOK_BODY
from bench.report import Figure

POOL_SIZE: Final = 4

_DDL: Final = """
CREATE TABLE IF NOT EXISTS bench_inbox (
    event_id uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    body jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
_INSERT: Final = (
    "INSERT INTO bench_inbox (event_id, tenant_id, body) VALUES ($1, $2, $3) "
    "ON CONFLICT (event_id) DO NOTHING"
)
_BODY: Final = WEBHOOK_BODY.decode()


async def run(ctx: Context) -> list[Figure]:
    dsn = await ctx.database("bench_insert")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_DDL)
        await _insert_loop(conn, time.perf_counter() + ctx.warmup)
        started = time.perf_counter()
        rows = await _insert_loop(conn, started + ctx.duration)
        sequential = rows / (time.perf_counter() - started)
    finally:
        await conn.close()
    async with asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE) as pool:
        await _pooled(pool, ctx.warmup)
        pooled = await _pooled(pool, ctx.duration)
    seq = Figure.baseline("pg.insert.sequential", sequential, "rows/s")
    return [seq, Figure.against("pg.insert.pool", pooled, seq)]


async def _insert_loop(conn: asyncpg.Connection | asyncpg.Pool, deadline: float) -> int:
    rows = 0
    while time.perf_counter() < deadline:
        await conn.execute(_INSERT, uuid.uuid4(), "tenant-bench", _BODY)
        rows += 1
    return rows


async def _pooled(pool: asyncpg.Pool, seconds: float) -> float:
    started = time.perf_counter()
    deadline = started + seconds
    async with asyncio.TaskGroup() as tg:
        workers = [tg.create_task(_insert_loop(pool, deadline)) for _ in range(POOL_SIZE)]
    return sum(w.result() for w in workers) / (time.perf_counter() - started)
