import asyncio
from pathlib import Path

import asyncpg
import pytest

from zapflow.runtime.db import MigrationError, create_pool, load_migrations, migrate
from zapflow.testing import unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration


def write(folder: Path, name: str, sql: str) -> None:
    (folder / name).write_text(sql, encoding="utf-8")


def test_migrations_load_in_version_order_and_reject_bad_names(tmp_path: Path) -> None:
    write(tmp_path, "0002_b.sql", "SELECT 2;")
    write(tmp_path, "0001_a.sql", "SELECT 1;")
    assert [m.version for m in load_migrations(tmp_path)] == ["0001", "0002"]
    write(tmp_path, "3_bad.sql", "SELECT 3;")
    with pytest.raises(MigrationError, match="bad migration file name"):
        load_migrations(tmp_path)


async def test_migrate_applies_once_records_and_is_rerunnable(
    fresh_db: DatabaseFactory, tmp_path: Path
) -> None:
    dsn = fresh_db("migrate")
    write(tmp_path, "0001_items.sql", "CREATE TABLE items (id int PRIMARY KEY);")
    assert await migrate(dsn, "svc_a", tmp_path) == ["0001"]
    assert await migrate(dsn, "svc_a", tmp_path) == []
    write(tmp_path, "0002_more.sql", "ALTER TABLE items ADD COLUMN name text;")
    assert await migrate(dsn, "svc_a", tmp_path) == ["0002"]

    pool = await create_pool(dsn, "svc_a")
    try:  # unqualified names resolve in the service's own schema
        await pool.execute("INSERT INTO items (id, name) VALUES (1, 'x')")
        versions = await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in versions] == ["0001", "0002"]
    finally:
        await pool.close()


async def test_an_applied_migration_that_changed_is_refused(
    fresh_db: DatabaseFactory, tmp_path: Path
) -> None:
    dsn = fresh_db("migrate")
    write(tmp_path, "0001_t.sql", "CREATE TABLE t (id int);")
    await migrate(dsn, "svc_b", tmp_path)
    write(tmp_path, "0001_t.sql", "CREATE TABLE t (id bigint);")
    with pytest.raises(MigrationError, match="changed after apply"):
        await migrate(dsn, "svc_b", tmp_path)


async def test_a_failing_migration_applies_nothing(
    fresh_db: DatabaseFactory, tmp_path: Path
) -> None:
    dsn = fresh_db("migrate")
    write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    write(tmp_path, "0002_broken.sql", "CREATE TABLE broken (id nosuchtype);")
    with pytest.raises(asyncpg.PostgresError):
        await migrate(dsn, "svc_c", tmp_path)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('svc_c.ok')") is None
    finally:
        await conn.close()


async def test_replicas_migrating_together_apply_each_version_once(
    fresh_db: DatabaseFactory, tmp_path: Path
) -> None:
    dsn = fresh_db("migrate")
    schema = unique("svc").replace("-", "_")
    write(
        tmp_path,
        "0001_counter.sql",
        "CREATE TABLE counter (n int); INSERT INTO counter VALUES (1);",
    )
    results = await asyncio.gather(*(migrate(dsn, schema, tmp_path) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {schema}.counter") == 1
    finally:
        await conn.close()


@pytest.mark.parametrize("session_state", [True, False])
async def test_a_pool_resets_sessions_unless_told_they_hold_no_state(
    fresh_db: DatabaseFactory, session_state: bool
) -> None:
    """``session_state=False`` skips asyncpg's reset query: a session setting survives a
    release only then (and a transaction left open is still rolled back either way)."""
    pool = await create_pool(fresh_db("pool"), "svc_p", max_size=1, session_state=session_state)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'changed'")
        async with pool.acquire() as conn:
            name = await conn.fetchval("SHOW application_name")
        assert name == ("zapflow-svc_p" if session_state else "changed")
    finally:
        await pool.close()
