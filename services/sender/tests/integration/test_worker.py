"""One partition worker against real NATS and PostgreSQL: held messages stay alive, nothing
overtakes, and a new owner gets what the previous one left, in order."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.resources import files

import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from zapflow.contracts.channels.v1 import ChannelSettings, PaceSettings
from zapflow.contracts.model import DeliveryStatus
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.sending.v1 import SendRequest
from zapflow.contracts.streams import SENDER_APPROVED
from zapflow.contracts.subjects import subject_for
from zapflow.providers import SendResult
from zapflow.runtime import db
from zapflow.runtime.broker import Publisher
from zapflow.sender import handlers
from zapflow.sender.adapters.pg import PgAttemptStore
from zapflow.sender.domain import AimdConfig
from zapflow.sender.pacing import Pacers
from zapflow.sender.sink import Sink
from zapflow.sender.testing import SimChannel, approved_text, partition_of
from zapflow.sender.worker import PartitionGuard, PartitionWorker
from zapflow.testing import unique

pytestmark = pytest.mark.integration


@dataclass
class SlowFirst:
    """Holds the first call ``hold_s`` seconds; records the order of the texts sent."""

    hold_s: float
    sent: list[str] = field(default_factory=list)

    async def send(
        self,
        settings: ChannelSettings,
        credentials: ChannelCredentialsReply,
        request: SendRequest,
        *,
        before_write: Callable[[], Awaitable[None]],
    ) -> SendResult:
        await before_write()
        if not self.sent:
            await asyncio.sleep(self.hold_s)
        body = getattr(request.content, "body", "")
        self.sent.append(body)
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


async def test_a_long_retry_keeps_its_messages_alive_and_in_order(
    bus: Client, sender_db: str
) -> None:
    await db.migrate(sender_db, "sender", files("zapflow.sender") / "migrations")
    pool = await db.create_pool(sender_db, "sender")
    channel = SimChannel(unique("t"), unique("c"), "1")
    spec = dataclasses.replace(
        SENDER_APPROVED[partition_of(channel.tenant_id, channel.channel_id)], ack_wait_s=1.0
    )
    settings = channel.settings("http://127.0.0.1:9", PaceSettings(rate_per_second=100, burst=5))
    provider = SlowFirst(hold_s=4.0)  # four times the ack wait
    store = PgAttemptStore(pool)
    publish = Publisher(bus.jetstream())

    def deps_for(guard: PartitionGuard, pacers: Pacers) -> handlers.Deps:
        return handlers.Deps(
            store=store,
            channels=StaticChannels(settings),
            credentials=StaticCredentials(),
            provider=provider,
            publish=publish,
            pacer_for=pacers.pacer_for,
            guard=guard,
        )

    def worker() -> PartitionWorker:
        pacers = Pacers(store, aimd=AimdConfig(), headroom=0.01, rng=random.Random(1))
        return PartitionWorker(bus.jetstream(), spec, deps_for, pacers, Sink(publish))

    try:
        first = worker()
        running = asyncio.create_task(first.run())
        for i in range(3):
            event = approved_text(channel, "+5511999990001", f"m{i}")
            await publish(subject_for(event), event)
        await asyncio.sleep(2.5)  # m0 is in its (slow) call; m1 and m2 wait behind it
        held = await bus.jetstream().consumer_info(spec.stream, spec.durable)
        assert (held.num_ack_pending, held.num_redelivered) == (3, 0)  # kept alive, not resent
        first.stop()
        await first.fetching_stopped()
        await asyncio.wait_for(running, 10)  # the call in flight finished and was recorded
        assert provider.sent == ["m0"]

        second = worker()  # the next owner: a fresh consumer, the rest again, in order
        running = asyncio.create_task(second.run())
        async with asyncio.timeout(10):
            while True:  # every message acknowledged (the worker recreates the consumer first)
                with contextlib.suppress(NotFoundError):
                    info = await bus.jetstream().consumer_info(spec.stream, spec.durable)
                    if len(provider.sent) == 3 and info.num_ack_pending == info.num_pending == 0:
                        break
                await asyncio.sleep(0.05)
        second.stop()
        await second.fetching_stopped()
        await asyncio.wait_for(running, 10)
    finally:
        await pool.close()
    assert provider.sent == ["m0", "m1", "m2"]  # m0 once, although its ack wait passed 4 times
