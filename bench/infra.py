"""The servers a run shares: a nats-server with JetStream and a fast PostgreSQL, in a temp dir.

They come from :mod:`zapflow.embedded`, the same processes the test harness and ``make run`` use,
so a benchmark measures the server versions the project pins. nats-server enforces the services'
NATS identities (``zapflow.runtime.natsauth``) as in production; their seeds are exported to this
process's environment, where services and references find them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from zapflow.embedded.nats import NatsServer
from zapflow.embedded.postgres import PostgresServer
from zapflow.runtime.natsauth import Identities


@dataclass(frozen=True)
class Infra:
    """Addresses of the shared servers."""

    nats_url: str
    postgres: PostgresServer

    def create_database(self, name: str) -> str:
        """Create database ``name`` (if missing) and return its DSN. Blocking."""
        return self.postgres.create_database(name)


@cache
def identities() -> Identities:
    """The run's NATS identities, exported to this process's environment on first use."""
    generated = Identities.generate()
    os.environ.update(generated.environment())
    return generated


def nats_config() -> str:
    """``authorization`` configuration for every nats-server a benchmark starts."""
    return identities().authorization_config()


@contextmanager
def shared_infra(workdir: Path) -> Iterator[Infra]:
    """Start both servers under ``workdir``; stop them on exit.

    PostgreSQL runs with ``fast=True`` (fsync, synchronous commit and full-page writes off).
    As root it runs as an unprivileged user, who must be able to traverse ``workdir``.
    """
    workdir.chmod(0o711)
    with ExitStack() as stack:
        nats = stack.enter_context(
            NatsServer(port=0, store_dir=workdir / "nats", config=nats_config())
        )
        postgres = stack.enter_context(PostgresServer(workdir / "postgres", fast=True))
        yield Infra(nats_url=nats.url, postgres=postgres)
