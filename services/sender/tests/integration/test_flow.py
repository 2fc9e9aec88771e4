"""The sender in-process against real NATS, PostgreSQL and the simulator: outcomes and records."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import SecretStr

from zapflow.contracts import headers as h
from zapflow.contracts.channels.v1 import PaceSettings
from zapflow.contracts.registry import parse_event
from zapflow.contracts.sending.v1 import FailureReason, SendFailed, SendSucceeded
from zapflow.contracts.subjects import subject_for
from zapflow.embedded import free_port
from zapflow.runtime.broker import Publisher
from zapflow.runtime.service import Service
from zapflow.sender.app import create_service
from zapflow.sender.settings import Settings
from zapflow.sender.testing import (
    CredentialsResponder,
    SimChannel,
    approved_text,
    register_channels,
)
from zapflow.simulator import AuditRecord, NumberConfig, SimulatorSettings, create_app
from zapflow.simulator.config import LatencyConfig, WebhookConfig
from zapflow.simulator.core import Simulator
from zapflow.simulator.testing import serve
from zapflow.testing import unique

pytestmark = pytest.mark.integration

PACE = PaceSettings(rate_per_second=200, burst=20)


def make_channels(count: int) -> list[SimChannel]:
    tenant = unique("t")
    return [SimChannel(tenant, unique(f"c{i}"), str(555_000_000 + i)) for i in range(count)]


@dataclass
class Sim:
    url: str
    simulator: Simulator

    async def records(self) -> list[AuditRecord]:
        return await self.simulator.audit_log.records()


@contextlib.asynccontextmanager
async def simulated(
    chans: list[SimChannel], *, latency_ms: float = 0.0, **extra: Any
) -> AsyncIterator[Sim]:
    settings = SimulatorSettings(
        numbers=tuple(
            NumberConfig(
                channel_id=c.channel_id,
                phone_number_id=c.phone_number_id,
                access_token=SecretStr(c.access_token),
            )
            for c in chans
        ),
        latency=LatencyConfig(fixed_ms=latency_ms),
        webhooks=WebhookConfig(enabled=False),
        **({"rate_limit": None} | extra),
    )
    app = create_app(settings)
    async with serve(app) as url:
        yield Sim(url, app.state.simulator)


@dataclass
class Outcomes:
    sent: dict[str, SendSucceeded] = field(default_factory=dict)
    failed: dict[str, SendFailed] = field(default_factory=dict)
    republished: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Msg) -> None:
        event = parse_event((msg.headers or {})[h.ZF_TYPE], msg.data)
        if isinstance(event, SendSucceeded):
            self.republished += str(event.message_id) in self.sent
            self.sent[str(event.message_id)] = event
        elif isinstance(event, SendFailed):
            self.failed[str(event.message_id)] = event
        self.changed.set()

    async def until(self, done: Callable[[], bool], within_s: float = 20.0) -> None:
        async with asyncio.timeout(within_s):
            while not done():
                self.changed.clear()
                await self.changed.wait()


async def outcomes(bus: Client) -> Outcomes:
    seen = Outcomes()
    await bus.subscribe("zf.sending.*.v1.>", cb=seen.on_msg)
    return seen


def settings(nats_url: str, dsn: str, **kw: Any) -> Settings:
    return Settings(
        nats_url=nats_url,
        database_url=SecretStr(dsn),
        http_port=free_port(),
        **kw,
    )


@contextlib.asynccontextmanager
async def sender(nats_url: str, dsn: str, **kw: Any) -> AsyncIterator[Service]:
    async with create_service(settings(nats_url, dsn, **kw)).running() as service:
        yield service


async def test_every_message_is_accepted_once_in_order_per_recipient(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    chans = make_channels(2)
    phones = [f"+55119999900{i:02d}" for i in range(3)]
    async with simulated(chans) as sim:
        await CredentialsResponder(bus, sim.url, chans).start()
        await register_channels(bus.jetstream(), chans, sim.url, PACE)
        seen = await outcomes(bus)
        publish = Publisher(bus.jetstream())
        sends = [approved_text(chans[i % 2], phones[i % 3], f"m{i}") for i in range(60)]
        for event in sends:
            await publish(subject_for(event), event)
        async with sender(own_nats, sender_db):
            await seen.until(lambda: len(seen.sent) + len(seen.failed) >= len(sends))
        records = await sim.records()
    assert not seen.failed
    assert len(records) == len(sends)
    by_wamid = {r.wamid: r for r in records}
    assert {e.provider_message_id for e in seen.sent.values()} == set(by_wamid)
    arrival = {str(e.message_id): by_wamid[e.provider_message_id].seq for e in seen.sent.values()}
    for chan in chans:
        for phone in phones:
            wanted = [
                str(s.request.message_id)
                for s in sends
                if s.request.channel_id == chan.channel_id and s.request.to.phone == phone
            ]
            assert sorted(wanted, key=arrival.__getitem__) == wanted


async def test_a_redelivered_accepted_message_is_republished_not_resent(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    chans = make_channels(1)
    async with simulated(chans) as sim:
        await CredentialsResponder(bus, sim.url, chans).start()
        await register_channels(bus.jetstream(), chans, sim.url, PACE)
        seen = await outcomes(bus)
        publish = Publisher(bus.jetstream())
        first = approved_text(chans[0], "+5511999990001", "hello")
        again = first.model_copy(update={"id": uuid4()})  # compliance approved it twice
        async with sender(own_nats, sender_db):
            await publish(subject_for(first), first)
            await seen.until(lambda: len(seen.sent) == 1)
            await publish(subject_for(again), again)
            await seen.until(lambda: seen.republished == 1)
        assert len(await sim.records()) == 1
    conn = await asyncpg.connect(sender_db)
    try:
        row = await conn.fetchrow("SELECT state, attempts FROM sender.send_attempts")
    finally:
        await conn.close()
    assert row is not None
    assert (row["state"], row["attempts"]) == ("accepted", 1)


async def test_a_provider_the_egress_guard_refuses_fails_the_send_without_a_call(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    """The same simulator on loopback, but a sender without the loopback allowance (as in
    production): the send fails at once as a channel configuration error, nothing reaches it."""
    chans = make_channels(1)
    async with simulated(chans) as sim:
        await CredentialsResponder(bus, sim.url, chans).start()
        await register_channels(bus.jetstream(), chans, sim.url, PACE)
        seen = await outcomes(bus)
        event = approved_text(chans[0], "+5511999990001", "oi")
        await Publisher(bus.jetstream())(subject_for(event), event)
        async with sender(own_nats, sender_db, egress_allow=""):
            await seen.until(lambda: len(seen.failed) == 1)
        assert await sim.records() == []
    (failed,) = seen.failed.values()
    assert (failed.reason, failed.permanent, failed.attempts) == (
        FailureReason.CHANNEL_DISCONNECTED,
        True,
        1,
    )
    assert failed.error_code == "egress_refused"
    assert not seen.sent
