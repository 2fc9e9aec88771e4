"""Sender integration fixtures: a nats-server of the test's own, a database, the simulator.

Each test gets its own nats-server: partition leases, the ``ZF_SENDER`` work queue and its
consumers have fixed names, so tests sharing a server would see each other's work.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from nats.aio.client import Client

from zapflow.contracts.streams import ZF_CHANNELS, ZF_DLQ, ZF_SENDER, ZF_SENDING
from zapflow.embedded import NatsServer
from zapflow.runtime.broker import declare
from zapflow.testing import DatabaseFactory, make_scratch_dir, nats_config
from zapflow.testing import connect as connect_nats


@pytest.fixture
def own_nats() -> Iterator[str]:
    scratch = make_scratch_dir("zapflow-sender-nats-")
    server = NatsServer(store_dir=scratch, config=nats_config()).start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest_asyncio.fixture
async def bus(own_nats: str) -> AsyncIterator[Client]:
    """A connection to ``own_nats`` with the streams the tests publish to and read."""
    client = await connect_nats(own_nats)
    await declare(client.jetstream(), (ZF_CHANNELS, ZF_SENDING, ZF_SENDER, ZF_DLQ))
    yield client
    await client.close()


@pytest.fixture
def sender_db(fresh_db: DatabaseFactory) -> str:
    return fresh_db("sender")
