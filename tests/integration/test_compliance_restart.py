"""A deferred send outlives the compliance process that deferred it.

Its own module: compliance's durable consumers are shared by every service instance on the
session's nats-server, so no other compliance instance may run meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from zapflow.compliance.app import create_service
from zapflow.compliance.settings import Settings
from zapflow.contracts.channels.v1 import (
    ChannelPolicy,
    ChannelRegistered,
    ChannelSettings,
    PaceSettings,
)
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import TemplateContent
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested
from zapflow.contracts.streams import ZF_SENDER
from zapflow.contracts.subjects import subject_for
from zapflow.embedded import free_port
from zapflow.runtime import broker
from zapflow.testing import unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration


class MovableClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def settings(nats_url: str, dsn: str) -> Settings:
    return Settings(
        nats_url=nats_url,
        database_url=dsn,
        http_port=free_port(),
        scheduler_interval_s=0.1,
        shutdown_grace_s=3,
    )


async def eventually(check: asyncpg.Pool | None, sql: str, *args: object) -> None:
    assert check is not None
    for _ in range(300):
        if await check.fetchval(sql, *args):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {sql}")


async def test_deferred_sends_survive_a_restart(
    nats_url: str, fresh_db: DatabaseFactory, js: JetStreamContext, nc: Client
) -> None:
    dsn, clock = fresh_db("compliance_restart"), MovableClock()
    tenant, channel, now = unique("t"), unique("ch"), clock.now()
    approved: list[Msg] = []

    async def seen(msg: Msg) -> None:
        approved.append(msg)

    await nc.subscribe(f"zf.sender.send_approved.v1.{tenant}.>", cb=seen)
    await broker.declare(js, [ZF_SENDER])
    publish = broker.Publisher(js)
    policy = ChannelPolicy(
        quiet_hours_start=(now - timedelta(hours=1)).time().replace(microsecond=0),
        quiet_hours_end=(now + timedelta(hours=2)).time().replace(microsecond=0),
    )
    registered = ChannelRegistered(
        tenant_id=tenant,
        occurred_at=now,
        channel=ChannelSettings(
            channel_id=channel,
            provider="simulator",
            pace=PaceSettings(rate_per_second=5),
            policy=policy,
        ),
    )
    campaign = SendRequested(
        tenant_id=tenant,
        occurred_at=now,
        request=SendRequest(
            message_id=uuid4(),
            channel_id=channel,
            to=Recipient(phone="+5511999990001"),
            content=TemplateContent(name="promo", language="pt_BR"),
            origin=SendOrigin.CAMPAIGN,
            campaign_id=uuid4(),
            recipient_id=uuid4(),
            idempotency_key=unique("idem"),
        ),
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with create_service(settings(nats_url, dsn), clock=clock).running():
            await publish(subject_for(registered), registered)
            await eventually(pool, "SELECT count(*) FROM compliance.channels")
            await publish(subject_for(campaign), campaign)
            await eventually(pool, "SELECT count(*) FROM compliance.deferred_sends")

        clock.offset = timedelta(hours=2, minutes=1)
        async with create_service(settings(nats_url, dsn), clock=clock).running():
            for _ in range(300):
                if approved:
                    break
                await asyncio.sleep(0.05)
    finally:
        assert pool is not None
        await pool.close()
    assert len(approved) == 1
    body = json.loads(approved[0].data)
    assert body["request"]["message_id"] == str(campaign.request.message_id)
