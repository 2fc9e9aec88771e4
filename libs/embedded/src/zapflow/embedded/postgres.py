"""A PostgreSQL server run as a child process on a data directory of ours.

``start()`` runs ``initdb`` when the directory is not a cluster yet (trust auth on loopback,
UTF8, C locale, superuser role ``zapflow``) and reuses it otherwise, clears what a killed server
or launcher left behind (``postmaster.pid``, orphaned processes), then starts ``postgres`` on
``127.0.0.1:port`` with Unix sockets disabled and waits until it accepts connections.
``fast=True`` trades durability for speed (``fsync``, ``synchronous_commit`` and
``full_page_writes`` off): right for throwaway test clusters, wrong for ``make run``.

    with PostgresServer(tmp / "pg", fast=True) as pg:
        dsn = pg.create_database("orders")     # postgresql://zapflow@127.0.0.1:PORT/orders
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import quote

from zapflow.embedded import _pg_datadir as datadir
from zapflow.embedded import pg_admin
from zapflow.embedded._pg_binaries import find_postgres_bindir
from zapflow.embedded._process import log_tail, stop_process
from zapflow.embedded.errors import ServerStartError
from zapflow.embedded.ports import free_port, is_accepting

__all__ = ["FAST_SETTINGS", "PostgresServer", "find_postgres_bindir"]

logger = logging.getLogger(__name__)

StrPath = str | os.PathLike[str]

FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
LOG_FILE_NAME = "zapflow-postgres.log"
_POLL_INTERVAL = 0.02


class PostgresServer:
    """One PostgreSQL cluster in ``data_dir``, served on ``host:port`` (``port=0``: a free port).

    ``bindir`` defaults to ``find_postgres_bindir()``. When running as root, the server runs as
    ``os_user`` (default ``postgres``, else ``nobody``) and the data directory is chowned to it;
    a ``data_dir`` that user cannot reach becomes a symlink to a directory under
    ``reachable_root`` (default ``/var/lib/zapflow/postgres``) holding the cluster, and binaries
    it cannot reach are copied there. ``cluster_dir`` is where the cluster really is.
    ``settings`` are extra ``-c name=value`` server settings; ``log_file`` defaults to
    ``<data_dir>/zapflow-postgres.log``.
    """

    def __init__(
        self,
        data_dir: StrPath,
        port: int = 0,
        *,
        fast: bool = False,
        superuser: str = "zapflow",
        host: str = "127.0.0.1",
        bindir: StrPath | None = None,
        os_user: str | None = None,
        settings: Mapping[str, str] | None = None,
        log_file: StrPath | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        reachable_root: StrPath | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.cluster_dir = self.data_dir
        self.reachable_root = (
            Path(reachable_root) if reachable_root is not None else datadir.REACHABLE_ROOT
        )
        self.port = port or free_port(host)
        self.fast = fast
        self.superuser = superuser
        self.host = host
        self.os_user = os_user
        self.settings = dict(settings or {})
        self.log_file = Path(log_file) if log_file is not None else self.data_dir / LOG_FILE_NAME
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._bindir = Path(bindir) if bindir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """``postgresql://zapflow@127.0.0.1:PORT/dbname``."""
        user, db = quote(self.superuser, safe=""), quote(dbname, safe="")
        return f"postgresql://{user}@{self.host}:{self.port}/{db}"

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_postgres_bindir()
        return self._bindir

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while running."""
        return None if self._proc is None else self._proc.pid

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- databases ---------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists; returns its DSN."""
        pg_admin.create_database(self.dsn(), name)
        return self.dsn(name)

    async def acreate_database(self, name: str) -> str:
        """Async ``create_database``."""
        await pg_admin.acreate_database(self.dsn(), name)
        return self.dsn(name)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Initialise the data directory if needed, start, wait until ready. Idempotent."""
        if self.is_running:
            return self
        user = datadir.OsUser.for_root(self.os_user)
        self._bindir = datadir.reachable_bindir(self.bindir, user, self.reachable_root)
        self.cluster_dir = datadir.place(self.data_dir, user, self.reachable_root)
        self._prepare_data_dir(user)
        datadir.clear_stale_lock(self.cluster_dir, self.stop_timeout)
        try:
            proc = self._launch(user)
            self._wait_ready(proc, time.monotonic() + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("postgres ready on %s:%s (pid %s)", self.host, self.port, proc.pid)
        return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT); immediate (SIGQUIT), then SIGKILL if it lingers. Idempotent."""
        if self._proc is not None:
            stop_process(self._proc, [(signal.SIGINT, self.stop_timeout), (signal.SIGQUIT, 5.0)])
            self._proc = None
            datadir.forget_launch(self.cluster_dir)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- internals ---------------------------------------------------------------------------

    def _prepare_data_dir(self, user: datadir.OsUser | None) -> None:
        cluster = self.cluster_dir
        if user is not None:
            datadir.check_reachable(self.bindir / "postgres", user, "postgres binaries")
        if not datadir.is_initialised(cluster):
            datadir.initdb(cluster, self.bindir, self.superuser, user, no_sync=self.fast)
            return
        datadir.check_version(cluster, self.bindir)
        if user is not None:
            datadir.check_reachable(cluster, user, "data directory")
            if cluster.stat().st_uid != user.uid:
                datadir.chown_tree(cluster, user)

    def _launch(self, user: datadir.OsUser | None) -> subprocess.Popen[bytes]:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        args = [str(self.bindir / "postgres"), "-D", str(self.cluster_dir)]
        for name, value in self._server_settings().items():
            args += ["-c", f"{name}={value}"]
        logger.debug("starting postgres: %s", args)
        proc = self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cluster_dir,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
            start_new_session=True,
        )
        datadir.record_launch(self.cluster_dir, proc.pid)
        return proc

    def _server_settings(self) -> dict[str, str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": "",
        }
        if self.fast:
            settings.update(FAST_SETTINGS)
        settings.update(self.settings)
        return settings

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        while True:
            code = proc.poll()
            if code is not None:
                self._fail(f"postgres exited with code {code}")
            lines = datadir.read_pid_file(self.cluster_dir)
            if (
                len(lines) >= 8
                and lines[0].strip() == str(proc.pid)
                and lines[7].strip() == "ready"
                and is_accepting(self.host, self.port)
            ):
                return
            if time.monotonic() > deadline:
                self._fail(f"not ready after {self.startup_timeout:.0f}s")
            time.sleep(_POLL_INTERVAL)

    def _fail(self, reason: str) -> None:
        raise ServerStartError("postgres", reason, self.log_file, log_tail(self.log_file))
