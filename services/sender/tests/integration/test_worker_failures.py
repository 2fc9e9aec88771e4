"""The partition worker under failures, against real NATS and PostgreSQL: an outage is waited out
in the lane (no dead letter however many times it fails), a request held back by the pace is not
written once the partition is being handed over, and a consumer deleted under the worker ends
it (so its supervisor starts a fresh one, which recreates the consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from nats.aio.client import Client

from zapflow.contracts.channels.v1 import ChannelSettings, PaceSettings
from zapflow.contracts.model import DeliveryStatus
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.sending.v1 import SendRequest
from zapflow.contracts.streams import SENDER_APPROVED, ConsumerSpec
from zapflow.contracts.subjects import subject_for
from zapflow.providers import SendResult
from zapflow.runtime import db
from zapflow.runtime.broker import Publisher
from zapflow.sender import handlers
from zapflow.sender.adapters.pg import PgAttemptStore
from zapflow.sender.domain import AimdConfig, RetryPolicy
from zapflow.sender.pacing import Pacers
from zapflow.sender.ports import NewAttempt
from zapflow.sender.sink import Sink
from zapflow.sender.testing import SimChannel, approved_text, partition_of
from zapflow.sender.worker import ConsumerGoneError, PartitionGuard, PartitionWorker
from zapflow.testing import unique

pytestmark = pytest.mark.integration


@dataclass
class Provider:
    """Accepts every send; with ``hold`` set, waits for it before the pace gate."""

    hold: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[str] = field(default_factory=list)

    async def send(
        self,
        settings: ChannelSettings,
        credentials: ChannelCredentialsReply,
        request: SendRequest,
        *,
        before_write: Callable[[], Awaitable[None]],
    ) -> SendResult:
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        await before_write()
        self.sent.append(getattr(request.content, "body", ""))
        return SendResult(f"wamid.{len(self.sent)}", DeliveryStatus.QUEUED)


class StaticChannels:
    def __init__(self, settings: ChannelSettings) -> None:
        self._settings = settings

    async def settings(self, tenant_id: str, channel_id: str) -> ChannelSettings | None:
        return self._settings


class StaticCredentials:
    async def get(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        return ChannelCredentialsReply(found=True, credentials={"access_token": "t"})

    def invalidate(self, tenant_id: str, channel_id: str) -> None:
        return None


class Unreachable:
    """The attempt store, with the database unreachable for the first ``failures`` writes."""

    def __init__(self, store: PgAttemptStore, failures: int) -> None:
        self._store = store
        self.failures = failures

    async def begin(self, attempt: NewAttempt) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        return await self._store.begin(attempt)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class Setup:
    bus: Client
    pool: asyncpg.Pool
    channel: SimChannel
    spec: ConsumerSpec
    provider: Provider = field(default_factory=Provider)

    def worker(
        self, store: Any = None, *, dead_letters: list[object] | None = None
    ) -> PartitionWorker:
        store = store or PgAttemptStore(self.pool)
        settings = self.channel.settings(
            "http://127.0.0.1:9", PaceSettings(rate_per_second=100, burst=5)
        )
        publish = Publisher(self.bus.jetstream())

        def deps_for(guard: PartitionGuard, pacers: Pacers) -> handlers.Deps:
            return handlers.Deps(
                store=store, channels=StaticChannels(settings), credentials=StaticCredentials(),
                provider=self.provider, publish=publish, pacer_for=pacers.pacer_for, guard=guard,
                policy=RetryPolicy(base_s=0.01, cap_s=0.05),
            )  # fmt: skip

        pacers = Pacers(store, aimd=AimdConfig(), headroom=0.01, rng=random.Random(1))
        return PartitionWorker(
            self.bus.jetstream(), self.spec, deps_for, pacers, Sink(publish),
            rng=random.Random(1),
        )  # fmt: skip

    async def publish(self, text: str) -> UUID:
        event = approved_text(self.channel, "+5511999990001", text)
        await Publisher(self.bus.jetstream())(subject_for(event), event)
        return event.request.message_id


async def until(predicate: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def setup(bus: Client, sender_db: str) -> AsyncIterator[Setup]:
    await db.migrate(sender_db, "sender", files("zapflow.sender") / "migrations")
    pool = await db.create_pool(sender_db, "sender")
    channel = SimChannel(unique("t"), unique("c"), "1")
    spec = SENDER_APPROVED[partition_of(channel.tenant_id, channel.channel_id)]
    yield Setup(bus, pool, channel, dataclasses.replace(spec, ack_wait_s=3.0))
    await pool.close()


async def test_an_unreachable_database_is_waited_out_and_never_dead_letters(
    setup: Setup,
) -> None:
    """Twelve failed writes (more than the ten unexpected failures that dead-letter)."""
    store = Unreachable(PgAttemptStore(setup.pool), failures=12)
    worker = setup.worker(store)
    running = asyncio.create_task(worker.run())
    try:
        await setup.publish("m0")
        await until(lambda: setup.provider.sent == ["m0"], 60)
        assert store.failures == 0
        await until(lambda: worker.held == 0, 10)  # acknowledged, not dead-lettered
        dlq = await setup.bus.jetstream().stream_info("ZF_DLQ")
        assert dlq.state.messages == 0
    finally:
        worker.stop()
        await worker.fetching_stopped()
        await asyncio.wait_for(running, 10)


async def test_a_request_held_back_by_the_pace_is_not_written_once_the_partition_goes(
    setup: Setup,
) -> None:
    setup.provider.hold = asyncio.Event()
    worker = setup.worker()
    running = asyncio.create_task(worker.run())
    try:
        message_id = await setup.publish("m0")
        await asyncio.wait_for(setup.provider.entered.wait(), 10)  # recorded, call prepared
        worker.stop()  # handed over (or the lease went stale) before the request was written
        await worker.fetching_stopped()
        setup.provider.hold.set()
        await asyncio.wait_for(running, 10)
    finally:
        setup.provider.hold.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 10)
    assert setup.provider.sent == []  # nothing went on the wire
    record = await PgAttemptStore(setup.pool).get(message_id)
    assert record is not None
    assert (record.state.value, record.error_code) == ("retrying", "handed_over")


async def test_a_consumer_deleted_under_the_worker_ends_it(setup: Setup) -> None:
    worker = setup.worker()
    running = asyncio.create_task(worker.run())
    try:
        await setup.publish("m0")
        await until(lambda: setup.provider.sent == ["m0"], 10)
        await setup.bus.jetstream().delete_consumer(setup.spec.stream, setup.spec.durable)
        with pytest.raises(ConsumerGoneError):
            await asyncio.wait_for(running, 15)
    finally:
        worker.stop()
        running.cancel()
