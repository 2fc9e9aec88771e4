"""The servers a run shares: a nats-server with JetStream and a fast PostgreSQL, in a temp dir.

They come from :mod:`zapflow.embedded`, the same processes the test harness and ``make run`` use,
so a benchmark measures the server versions the project pins.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from zapflow.embedded.nats import NatsServer
from zapflow.embedded.postgres import PostgresServer


@dataclass(frozen=True)
class Infra:
    """Addresses of the shared servers."""

    nats_url: str
    postgres: PostgresServer

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing) and return its DSN. Blocking."""
        return self.postgres.create_database(name)


@contextmanager
def shared_infra(workdir: Path) -> Iterator[Infra]:
    """Start both servers under ``workdir``; stop them on exit.

    PostgreSQL runs with ``fast=True`` (fsync, synchronous commit and full-page writes off).
    As root it runs as an unprivileged user, who must be able to traverse ``workdir``.
    """
    workdir.chmod(0o711)
    with ExitStack() as stack:
        nats = stack.enter_context(NatsServer(port=0, store_dir=workdir / "nats"))
        postgres = stack.enter_context(PostgresServer(workdir / "postgres", fast=True))
        yield Infra(nats_url=nats.url, postgres=postgres)
