"""The nats-server and PostgreSQL a test session shares, each started on first use.

``$NATS_URL`` / ``$DATABASE_URL`` (when set and not empty) point at existing servers instead; in
that case nothing is started and databases are created on the server ``$DATABASE_URL`` names.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from zapflow.embedded import NatsServer, PostgresServer
from zapflow.embedded.pg_admin import create_database, dsn_with_database
from zapflow.testing.identities import nats_config
from zapflow.testing.naming import unique
from zapflow.testing.scratch import make_scratch_dir

logger = logging.getLogger(__name__)

NATS_URL_ENV = "NATS_URL"
DATABASE_URL_ENV = "DATABASE_URL"
_MAX_PREFIX = 40  # leaves room for "-<uuid8>" within PostgreSQL's 63-byte names


class SessionServers:
    """Lazily started servers for one test session; ``close()`` stops what was started."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._nats: NatsServer | None = None
        self._pg: PostgresServer | None = None
        self._pg_dir: Path | None = None
        self._nats_dir: Path | None = None

    @property
    def started(self) -> tuple[str, ...]:
        """Names of the servers this object started ("nats", "postgres")."""
        return tuple(
            name for name, server in (("nats", self._nats), ("postgres", self._pg)) if server
        )

    def nats_url(self) -> str:
        """``$NATS_URL``, else the URL of a JetStream nats-server started now (once)."""
        if url := self._env.get(NATS_URL_ENV):
            return url
        if self._nats is None:
            scratch = make_scratch_dir("zapflow-test-nats-")
            try:
                self._nats = NatsServer(
                    store_dir=scratch, server_name="zapflow-test", config=nats_config()
                ).start()
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            self._nats_dir = scratch
        return self._nats.url

    def pg_admin_dsn(self) -> str:
        """``$DATABASE_URL``, else the ``postgres`` database of a throwaway cluster (once)."""
        if dsn := self._env.get(DATABASE_URL_ENV):
            return dsn
        if self._pg is None:
            scratch = make_scratch_dir("zapflow-test-pg-")
            try:
                self._pg = PostgresServer(scratch / "pg", fast=True).start()
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            self._pg_dir = scratch
        return self._pg.dsn()

    def create_database(self, prefix: str = "test") -> str:
        """Create a uniquely named database (``<prefix>-<uuid8>``); returns its DSN."""
        admin = self.pg_admin_dsn()
        name = unique(_clean_prefix(prefix))
        create_database(admin, name)
        return dsn_with_database(admin, name)

    def close(self) -> None:
        if self._nats is not None:
            self._nats.stop()
            self._nats = None
        if self._pg is not None:
            self._pg.stop()
            self._pg = None
        for scratch in (self._nats_dir, self._pg_dir):
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        self._nats_dir = self._pg_dir = None


def _clean_prefix(prefix: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_]+", "_", prefix.lower()).strip("_")
    return cleaned[:_MAX_PREFIX] or "test"
