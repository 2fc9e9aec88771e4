from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from zapflow.embedded import DataDirError, PostgresServer, ServerStartError
from zapflow.embedded._pg_binaries import _pgserver_bindir, server_major_version
from zapflow.embedded._process import is_alive
from zapflow.embedded.postgres import find_postgres_bindir
from zapflow.testing import make_scratch_dir

from .launcher import orphan_of_killed_launcher


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """A cluster initialised once per module; tests start copies of it."""
    base = make_scratch_dir("zapflow-pg-template-")
    PostgresServer(base / "pg", fast=True).start().stop()
    yield base / "pg"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def data_dir(template: Path, server_tmp_path: Path) -> Path:
    """A copy of the template cluster (root-owned when we are root: start() must chown it)."""
    return Path(shutil.copytree(template, server_tmp_path / "pg"))


@pytest.fixture(scope="module")
def pg(template: Path) -> Iterator[PostgresServer]:
    base = make_scratch_dir("zapflow-pg-shared-")
    with PostgresServer(shutil.copytree(template, base / "pg"), fast=True) as server:
        yield server
    shutil.rmtree(base, ignore_errors=True)


async def _scalar(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.mark.integration
async def test_runs_sql_as_the_zapflow_superuser_with_fast_settings(pg: PostgresServer) -> None:
    conn = await asyncpg.connect(pg.dsn())
    try:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, body text)")
        await conn.execute("INSERT INTO t VALUES (1, 'olá')")
        assert await conn.fetchval("SELECT body FROM t WHERE id = 1") == "olá"
        assert await conn.fetchval("SELECT current_user") == "zapflow"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        assert await conn.fetchval("SHOW fsync") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await conn.close()


@pytest.mark.integration
async def test_create_database_is_idempotent_and_isolated(pg: PostgresServer) -> None:
    dsn = pg.create_database("orders-1")
    assert pg.create_database("orders-1") == dsn
    assert await pg.acreate_database("orders-2") == pg.dsn("orders-2")

    assert dsn == f"postgresql://zapflow@127.0.0.1:{pg.port}/orders-1"
    assert await _scalar(dsn, "SELECT current_database()") == "orders-1"
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE only_here (id int)")
    await conn.close()
    other = await _scalar(pg.dsn("orders-2"), "SELECT to_regclass('only_here') IS NULL")
    assert other is True


@pytest.mark.integration
async def test_restarts_on_an_existing_data_dir_and_keeps_data(data_dir: Path) -> None:
    initialised_at = (data_dir / "PG_VERSION").stat().st_mtime_ns
    with PostgresServer(data_dir) as first:
        conn = await asyncpg.connect(first.dsn())
        await conn.execute("CREATE TABLE kept AS SELECT 42 AS answer")
        await conn.close()

    with PostgresServer(data_dir) as second:
        assert second.port != first.port
        assert await _scalar(second.dsn(), "SELECT answer FROM kept") == 42

    assert (data_dir / "PG_VERSION").stat().st_mtime_ns == initialised_at  # no second initdb


@pytest.mark.integration
async def test_recovers_after_sigkill_of_the_postmaster(data_dir: Path) -> None:
    killed = PostgresServer(data_dir).start()
    conn = await asyncpg.connect(killed.dsn())
    await conn.execute("CREATE TABLE survived AS SELECT 1 AS one")  # durable: not fast
    await conn.close()
    assert killed.pid is not None
    os.kill(killed.pid, signal.SIGKILL)

    assert (data_dir / "postmaster.pid").exists()
    with PostgresServer(data_dir, fast=True) as server:
        assert await _scalar(server.dsn(), "SELECT one FROM survived") == 1
    killed.stop()  # reaps the killed child


@pytest.mark.integration
async def test_stops_the_orphan_of_a_launcher_killed_with_sigkill(data_dir: Path) -> None:
    orphan = orphan_of_killed_launcher(_LAUNCHER, data_dir)
    assert is_alive(orphan)

    with PostgresServer(data_dir, fast=True) as server:
        assert not is_alive(orphan)
        assert await _scalar(server.dsn(), "SELECT 1") == 1


_LAUNCHER = """
import sys, time
from zapflow.embedded import PostgresServer
print(PostgresServer(sys.argv[1], fast=True).start().pid, flush=True)
time.sleep(120)
"""


@pytest.mark.integration
def test_refuses_a_data_dir_another_live_server_uses(data_dir: Path) -> None:
    with PostgresServer(data_dir, fast=True) as running:
        with pytest.raises(DataDirError, match="in use"):
            PostgresServer(data_dir, fast=True).start()
        assert running.is_running


@pytest.mark.integration
def test_ignores_a_stale_pid_file_naming_an_unrelated_live_process(data_dir: Path) -> None:
    (data_dir / "postmaster.pid").write_text(f"1\n{data_dir}\n")

    with PostgresServer(data_dir, fast=True) as server:
        assert server.is_running


@pytest.mark.integration
def test_a_bad_setting_fails_with_the_log_tail(data_dir: Path) -> None:
    server = PostgresServer(data_dir, settings={"no_such_setting": "1"})

    with pytest.raises(ServerStartError) as caught:
        server.start()

    assert 'unrecognized configuration parameter "no_such_setting"' in str(caught.value)
    assert caught.value.log_file == data_dir / "zapflow-postgres.log"
    assert not server.is_running


def test_refuses_a_non_empty_directory_that_is_no_cluster(server_tmp_path: Path) -> None:
    (server_tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(DataDirError, match="not empty"):
        PostgresServer(server_tmp_path).start()


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs postgres as another user")
async def test_as_root_a_checkout_the_server_user_cannot_traverse_still_runs(
    tmp_path: Path, server_tmp_path: Path
) -> None:
    # `make run` as root from a clone under a mode-700 home: .zapflow/pg is out of postgres' reach
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    data_dir = home / "zapflow" / ".zapflow" / "pg"
    reachable = server_tmp_path / "reachable"

    with PostgresServer(data_dir, fast=True, reachable_root=reachable) as server:
        dsn = server.create_database("kept")
        await _scalar(dsn, "CREATE TABLE t AS SELECT 42 AS answer")
        cluster = server.cluster_dir
    assert data_dir.is_symlink()
    assert data_dir.resolve() == cluster
    assert cluster.parent == reachable

    with PostgresServer(data_dir, fast=True, reachable_root=reachable) as again:  # a restart
        assert again.cluster_dir == cluster
        assert await _scalar(again.dsn("kept"), "SELECT answer FROM t") == 42

    data_dir.unlink()  # `make clean` deletes .zapflow: the next start begins a new cluster
    with PostgresServer(data_dir, fast=True, reachable_root=reachable) as fresh:
        assert fresh.cluster_dir != cluster
        assert (
            await _scalar(fresh.dsn(), "SELECT count(*) FROM pg_database WHERE datname = 'kept'")
            == 0
        )


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs postgres as another user")
def test_as_root_an_existing_cluster_the_server_user_cannot_reach_is_refused(
    tmp_path: Path, server_tmp_path: Path
) -> None:
    tmp_path.chmod(0o700)
    (tmp_path / "pg").mkdir()
    (tmp_path / "pg" / "PG_VERSION").write_text("15\n")

    with pytest.raises(DataDirError, match="chmod o\\+x"):
        PostgresServer(tmp_path / "pg", reachable_root=server_tmp_path).start()


_WHEEL_BINDIR = _pgserver_bindir()


@pytest.mark.integration
@pytest.mark.skipif(_WHEEL_BINDIR is None, reason="the pgserver wheel is not installed")
async def test_the_pgserver_wheel_binaries_work_as_a_fallback(
    server_tmp_path: Path, data_dir: Path
) -> None:
    assert _WHEEL_BINDIR is not None
    with PostgresServer(server_tmp_path / "wheel", bindir=_WHEEL_BINDIR, fast=True) as server:
        version = await _scalar(server.dsn(), "SHOW server_version_num")
    assert str(version).startswith(str(server_major_version(_WHEEL_BINDIR)))

    if server_major_version(_WHEEL_BINDIR) != server_major_version(find_postgres_bindir()):
        with pytest.raises(DataDirError, match="was initialised by PostgreSQL"):
            PostgresServer(data_dir, bindir=_WHEEL_BINDIR).start()


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs postgres as another user")
@pytest.mark.skipif(_WHEEL_BINDIR is None, reason="the pgserver wheel is not installed")
async def test_as_root_wheel_binaries_the_server_user_cannot_reach_are_copied_where_it_can(
    tmp_path: Path, server_tmp_path: Path
) -> None:
    # a machine without PostgreSQL: the binaries are the pgserver wheel's, in a mode-700 checkout
    bindir = _wheel_in_a_closed_checkout(tmp_path)

    server = PostgresServer(
        server_tmp_path / "pg", bindir=bindir, fast=True, reachable_root=server_tmp_path / "r"
    )
    with server:
        assert await _scalar(server.dsn(), "SELECT 1") == 1
    assert server.bindir.is_relative_to(server_tmp_path / "r")


def _wheel_in_a_closed_checkout(tmp_path: Path) -> Path:
    """The pgserver wheel's files laid out as in a .venv, under a mode-700 directory."""
    assert _WHEEL_BINDIR is not None
    site = tmp_path / "checkout" / "site-packages"
    wheel = _WHEEL_BINDIR.parent.parent
    shutil.copytree(wheel / "pginstall", site / "pgserver" / "pginstall", symlinks=True)
    if (wheel.parent / "pgserver.libs").is_dir():
        shutil.copytree(wheel.parent / "pgserver.libs", site / "pgserver.libs", symlinks=True)
    tmp_path.chmod(0o700)
    return site / "pgserver" / "pginstall" / "bin"
