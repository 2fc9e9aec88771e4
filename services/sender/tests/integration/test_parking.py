"""A stuck channel is parked out of memory; the other channels of its partition keep sending, and
what was parked is sent later, once each, in order — also by the next owner of the partition."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files

import asyncpg
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from zapflow.contracts.channels.v1 import ChannelSettings, PaceSettings
from zapflow.contracts.model import DeliveryStatus
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.sending.v1 import SendRequest
from zapflow.contracts.streams import SENDER_APPROVED
from zapflow.contracts.subjects import SEND_PARTITIONS, subject_for
from zapflow.providers import SendResult
from zapflow.runtime import db
from zapflow.runtime.broker import Publisher
from zapflow.sender import handlers
from zapflow.sender.adapters.pg import PgAttemptStore
from zapflow.sender.adapters.pg_park import PgParkStore
from zapflow.sender.domain import AimdConfig
from zapflow.sender.pacing import Pacers
from zapflow.sender.parking import Budget
from zapflow.sender.sink import Sink
from zapflow.sender.testing import SimChannel, approved_text, partition_of
from zapflow.sender.worker import PartitionGuard, PartitionWorker
from zapflow.testing import unique

pytestmark = pytest.mark.integration

RECIPIENTS = ("+5511999990001", "+5511999990002", "+5511999990003")


@dataclass
class StuckChannel:
    """Calls of ``stuck`` channels wait until ``free`` is set; every sent text is recorded."""

    stuck: str
    free: asyncio.Event = field(default_factory=asyncio.Event)
    sent: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(
        self,
        settings: ChannelSettings,
        credentials: ChannelCredentialsReply,
        request: SendRequest,
        *,
        before_write: Callable[[], Awaitable[None]],
    ) -> SendResult:
        await before_write()
        if settings.channel_id == self.stuck:
            await self.free.wait()
        self.sent[settings.channel_id].append(
            (request.to.address, getattr(request.content, "body", ""))
        )
        self.changed.set()
        return SendResult(f"wamid.{request.message_id.hex}", DeliveryStatus.QUEUED)

    async def wait_for(self, channel_id: str, count: int) -> None:
        async with asyncio.timeout(30):
            while len(self.sent[channel_id]) < count:
                self.changed.clear()
                await self.changed.wait()


class Channels:
    def __init__(self, *settings: ChannelSettings) -> None:
        self._settings = {s.channel_id: s for s in settings}

    async def settings(self, tenant_id: str, channel_id: str) -> ChannelSettings | None:
        return self._settings.get(channel_id)


class Credentials:
    async def get(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        return ChannelCredentialsReply(found=True, credentials={"access_token": "t"})

    def invalidate(self, tenant_id: str, channel_id: str) -> None:
        return None


def same_partition_pair() -> tuple[SimChannel, SimChannel]:
    tenant = unique("t")
    by_partition: dict[int, str] = {}
    while True:
        channel_id = unique("c")
        partition = partition_of(tenant, channel_id)
        if partition in by_partition:
            return SimChannel(tenant, by_partition[partition], "1"), SimChannel(
                tenant, channel_id, "2"
            )
        by_partition[partition] = channel_id


def in_request_order(sent: list[tuple[str, str]], count: int) -> None:
    """Each of ``count`` texts once, and per recipient in the order they were requested."""
    assert sorted(int(text.split()[1]) for _, text in sent) == list(range(count))
    for recipient in RECIPIENTS:
        mine = [int(text.split()[1]) for to, text in sent if to == recipient]
        assert mine == sorted(mine), recipient


async def test_a_stuck_channel_is_parked_and_its_partition_keeps_sending(
    bus: Client, sender_db: str
) -> None:
    await db.migrate(sender_db, "sender", files("zapflow.sender") / "migrations")
    pool = await db.create_pool(sender_db, "sender")
    stuck, healthy = same_partition_pair()
    partition = partition_of(stuck.tenant_id, stuck.channel_id)
    assert partition_of(healthy.tenant_id, healthy.channel_id) == partition < SEND_PARTITIONS
    spec = SENDER_APPROVED[partition]
    pace = PaceSettings(rate_per_second=1000, burst=10)
    provider = StuckChannel(stuck.channel_id)
    channels = Channels(stuck.settings("http://127.0.0.1:9", pace), healthy.settings("x", pace))
    store, park = PgAttemptStore(pool), PgParkStore(pool)
    publish = Publisher(bus.jetstream())
    budget = Budget(horizon_s=1.0, min_messages=8, max_messages=20)

    def deps_for(guard: PartitionGuard, pacers: Pacers) -> handlers.Deps:
        return handlers.Deps(
            store=store,
            channels=channels,
            credentials=Credentials(),
            provider=provider,
            publish=publish,
            pacer_for=pacers.pacer_for,
            guard=guard,
        )

    def worker() -> PartitionWorker:
        pacers = Pacers(store, aimd=AimdConfig(), headroom=0.01, rng=random.Random(1))
        sink = Sink(publish)
        return PartitionWorker(
            bus.jetstream(), spec, deps_for, pacers, sink, park=park, budget=budget
        )

    stuck_count, healthy_count = 3 * spec.max_ack_pending // 2, 60  # more than max_ack_pending
    try:
        first = worker()
        running = asyncio.create_task(first.run())
        for i in range(stuck_count):
            event = approved_text(stuck, RECIPIENTS[i % 3], f"a {i} {unique('x')}")
            await publish(subject_for(event), event)
        for i in range(healthy_count):
            event = approved_text(healthy, RECIPIENTS[i % 3], f"b {i} {unique('x')}")
            await publish(subject_for(event), event)

        await provider.wait_for(healthy.channel_id, healthy_count)  # not stopped by the other
        assert first.parking is not None
        assert first.parking.parked((stuck.tenant_id, stuck.channel_id)) >= stuck_count - 20
        info = await bus.jetstream().consumer_info(spec.stream, spec.durable)
        assert info.num_ack_pending <= budget.max_messages  # the stuck channel's budget only
        rows = await parked_rows(pool, stuck)
        assert stuck_count - 2 * budget.max_messages <= rows <= stuck_count

        first.stop()  # handing the partition over while the stuck calls are in flight
        await first.fetching_stopped()
        provider.free.set()
        await asyncio.wait_for(running, 10)

        second = worker()  # the next owner: what was held comes back from JetStream, the rest
        running = asyncio.create_task(second.run())  # from the park, all in stream order
        await provider.wait_for(stuck.channel_id, stuck_count)
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(NotFoundError):
                    info = await bus.jetstream().consumer_info(spec.stream, spec.durable)
                    idle = info.num_ack_pending == info.num_pending == 0
                    if idle and await parked_rows(pool, stuck) == 0:
                        break
                await asyncio.sleep(0.05)
        second.stop()
        await second.fetching_stopped()
        await asyncio.wait_for(running, 10)
    finally:
        await pool.close()
    in_request_order(provider.sent[stuck.channel_id], stuck_count)
    in_request_order(provider.sent[healthy.channel_id], healthy_count)


async def parked_rows(pool: asyncpg.Pool, channel: SimChannel) -> int:
    count = await pool.fetchval(
        "SELECT count(*) FROM parked_sends WHERE tenant_id = $1 AND channel_id = $2",
        channel.tenant_id,
        channel.channel_id,
    )
    return int(count)
