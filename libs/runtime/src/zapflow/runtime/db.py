"""PostgreSQL pools and migrations.

Every service owns one schema named after itself. Migrations are plain SQL files
``NNNN_name.sql`` in the service package's ``migrations/`` folder, applied in order inside one
transaction, recorded in ``<schema>.schema_migrations`` with a checksum, under an advisory
lock so replicas starting together apply them once. Re-running is a no-op; an edited file that was
already applied is an error (write a new migration instead).

Every pool is bounded in time (:class:`Timeouts`): the server cancels a statement after
``statement_timeout`` and ends a session left idle inside a transaction; the client gives up on a
command the server does not answer, on a connection attempt, and on waiting for a free
connection. Each of these surfaces as an error instead of a hang, and
``zapflow.runtime.faults`` tells which of them are the infrastructure's (waited out) and which
count against the message (a statement timeout).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING

import asyncpg
from asyncpg.pool import PoolAcquireContext

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA = re.compile(r"^[a-z][a-z0-9_]*$")


class MigrationError(RuntimeError):
    """A migration folder or an applied migration is inconsistent."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Traversable) -> list[Migration]:
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            match = _NAME.match(entry.name)
            if not match:
                raise MigrationError(f"bad migration file name {entry.name!r} (want NNNN_name.sql)")
            found.append(Migration(match[1], match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {folder}")
    return found


async def migrate(dsn: str, schema: str, folder: Traversable) -> list[str]:
    """Apply pending migrations of ``schema``; returns the versions applied now."""
    if not _SCHEMA.match(schema):
        raise MigrationError(f"bad schema name {schema!r}")
    migrations = load_migrations(folder)
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = await conn.fetch(f"SELECT version, checksum FROM {schema}.schema_migrations")
            done = {r["version"]: r["checksum"] for r in rows}
            for m in migrations:
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise MigrationError(f"{schema} migration {m.version} changed after apply")
                    continue
                await conn.execute(f"SET LOCAL search_path TO {schema}, public")
                await conn.execute(m.sql)
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (version, name, checksum)"
                    " VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
                applied_now.append(m.version)
                logger.info("applied migration %s_%s", m.version, m.name, extra={"schema": schema})
    finally:
        await conn.close()
    return applied_now


async def _no_reset(_: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset query on release (an open transaction is still rolled back)."""


@dataclass(frozen=True)
class Timeouts:
    """How long a pool's users wait for PostgreSQL (seconds); the settings ``ZF_<SERVICE>_DB_*``.

    ``statement_s`` is the server's ``statement_timeout``; the client's own command timeout is a
    few seconds longer, so it fires only when the server does not answer at all.
    """

    statement_s: float = 15.0
    acquire_s: float = 10.0
    connect_s: float = 10.0
    idle_in_transaction_s: float = 60.0

    @property
    def command_s(self) -> float:
        return self.statement_s + 5.0

    def server_settings(self) -> dict[str, str]:
        return {
            "statement_timeout": f"{int(self.statement_s * 1000)}ms",
            "idle_in_transaction_session_timeout": f"{int(self.idle_in_transaction_s * 1000)}ms",
        }


if TYPE_CHECKING:
    _AsyncpgPool = asyncpg.Pool[asyncpg.Record]
else:
    _AsyncpgPool = asyncpg.Pool  # not subscriptable at run time


class Pool(_AsyncpgPool):
    """asyncpg's pool, whose ``acquire`` (and so ``fetch``, ``execute``, …) waits at most
    ``acquire_timeout`` for a connection unless the caller gives its own timeout."""

    __slots__ = ("acquire_timeout",)
    acquire_timeout: float | None

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext[asyncpg.Record]:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(
    dsn: str,
    schema: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    session_state: bool = True,
    timeouts: Timeouts | None = None,
) -> Pool:
    """A pool whose connections resolve unqualified names in the service's own schema and wait
    for PostgreSQL only as long as ``timeouts`` say (the module docstring).

    ``session_state=False`` is for callers that leave nothing on a connection between uses (no
    session advisory locks, ``LISTEN``, ``SET`` or open cursors): the pool then skips asyncpg's
    reset query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``), one round
    trip saved on every release.
    """
    limits = timeouts or Timeouts()
    pool = Pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        reset=None if session_state else _no_reset,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=limits.command_s,
        timeout=limits.connect_s,
        server_settings={
            "search_path": f"{schema}, public",
            "application_name": f"zapflow-{schema}",
            **limits.server_settings(),
        },
    )
    pool.acquire_timeout = limits.acquire_s
    await pool
    return pool
