"""Pytest plugin (``-p zapflow.testing.plugin``): real nats-server and PostgreSQL fixtures.

Servers start on first request, once per session, on free loopback ports with temporary
storage, unless ``$NATS_URL`` / ``$DATABASE_URL`` name existing ones.

===================  ========  ====================================================
fixture              scope     value
===================  ========  ====================================================
``nats_url``         session   URL of a JetStream nats-server enforcing the identities
``nc``               function  ``nats.aio.client.Client`` connected as ``admin``
``js``               function  ``nc.jetstream()``
``pg_server_dsn``    session   DSN of the server's ``postgres`` (admin) database
``fresh_db``         session   ``fresh_db(prefix="test") -> dsn``: a new database
``pg_dsn``           module    DSN of a database of the test module's own
``server_tmp_path``  function  temp dir that a server run as another user can reach
===================  ========  ====================================================

Isolation comes from unique names (``zapflow.testing.unique``), not from cleanup. NATS identities:
see ``zapflow.testing.identities``.

The session runs as a local development deployment, the way ``zapflow up`` does
(``zapflow.runtime.settings.local_deployment_env``): ``ZF_ENV=development`` (the gateway accepts
its public development keys) and loopback in ``ZF_EGRESS_ALLOW`` (services reach the simulator
and fake servers on 127.0.0.1/::1 through the egress guard, which stays on). Tests of
production behaviour pass ``environment="production"`` or an ``EgressPolicy`` of their own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js import JetStreamContext

from zapflow.runtime.settings import local_deployment_env
from zapflow.testing import identities
from zapflow.testing.scratch import make_scratch_dir
from zapflow.testing.servers import SessionServers
from zapflow.testing.types import DatabaseFactory


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: talks to a real nats-server and PostgreSQL")
    # services started in-process or as child processes read these like any other setting
    os.environ.update(local_deployment_env(os.environ))
    if not os.environ.get("NATS_URL"):
        identities.export(os.environ)  # servers started here enforce them


@pytest.fixture(scope="session")
def zapflow_servers() -> Iterator[SessionServers]:
    """The session's lazily started servers (see ``SessionServers``)."""
    servers = SessionServers(os.environ)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def nats_url(zapflow_servers: SessionServers) -> str:
    return zapflow_servers.nats_url()


@pytest_asyncio.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A connection as ``admin`` (see ``zapflow.testing.identities``)."""
    client = await identities.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture(scope="session")
def pg_server_dsn(zapflow_servers: SessionServers) -> str:
    return zapflow_servers.pg_admin_dsn()


@pytest.fixture(scope="session")
def fresh_db(zapflow_servers: SessionServers, pg_server_dsn: str) -> DatabaseFactory:
    """Factory of new, uniquely named databases; usable from fixtures of any scope."""
    return zapflow_servers.create_database


@pytest.fixture(scope="module")
def pg_dsn(fresh_db: DatabaseFactory, request: pytest.FixtureRequest) -> str:
    """A database shared by the tests of one module (apply migrations on top of it)."""
    return fresh_db(request.module.__name__.rpartition(".")[2])


@pytest.fixture
def server_tmp_path() -> Iterator[Path]:
    """A fresh scratch directory (see ``zapflow.testing.scratch``), removed afterwards.

    For ``PostgresServer`` data directories in tests: as root, postgres runs as an unprivileged
    user, which cannot enter pytest's ``tmp_path`` (it lives in a 0700 directory).
    """
    path = make_scratch_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
