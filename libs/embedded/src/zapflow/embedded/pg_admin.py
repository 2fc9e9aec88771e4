"""Cluster-level chores on any PostgreSQL reachable by DSN (embedded or ``$DATABASE_URL``).

``create_database`` is idempotent and safe to race: a concurrent creator's win is not an error.
The sync variants work with or without a running event loop (they use a private loop, in a
worker thread when the calling thread already runs one).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

T = TypeVar("T")

MAX_IDENTIFIER_BYTES = 63


def dsn_with_database(dsn: str, dbname: str) -> str:
    """``dsn`` pointing at database ``dbname`` instead (user, host, port and query kept)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    if not name or len(name.encode()) > MAX_IDENTIFIER_BYTES or "\x00" in name:
        raise ValueError(f"invalid PostgreSQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


async def acreate_database(admin_dsn: str, name: str) -> bool:
    """Create database ``name`` unless it exists; True when this call created it."""
    statement = f"CREATE DATABASE {quote_ident(name)}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await conn.execute(statement)
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


def create_database(admin_dsn: str, name: str) -> bool:
    """Blocking ``acreate_database``."""
    return run_sync(acreate_database(admin_dsn, name))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a private event loop, from sync code or inside a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="zapflow-pg-admin") as pool:
        return pool.submit(asyncio.run, coro).result()
