"""The outbound path without its edges: send requests through compliance and the sender.

* ``outbound.sends_per_s`` (a *partial* figure: the requests are published straight to
  JetStream, without the Send API, and ingest does not run; ``e2e.sends_per_s`` of
  :mod:`bench.bench_e2e` is what users get): N ``SendRequested`` (API-origin Meta templates
  to distinct recipients, 16 channels on 16 partitions, pace far above what is reached, no
  daily cap) go through the real ``zapflow-compliance`` (rules, decision, outbox,
  ``SendApproved``) and the real ``zapflow-sender`` (attempt records, provider call,
  ``SendSucceeded``), one process each, to the lean Meta-format provider of
  :mod:`bench.bench_sender` with zero latency. Both services
  are ready and compliance knows the channels before the requests are published (as fast as
  JetStream takes them); the figure is the rate at which requests reach the provider between
  the 10th and the 90th percentile of arrivals. N scales with the run's duration; a run that
  has not delivered all N within ``max(30 s, 8 x duration)`` is measured on what arrived (from
  the 10th percentile to the last arrival), so a slow machine cannot stall ``make bench``.
* Its reference is ``sender.ref.consume_ack_publish`` (:mod:`bench.bench_sender`, measured
  once per run): raw nats-py fetch, acknowledged publish, ack. The path has two such hops
  (request → approval → outcome) plus two services' database work and the HTTP call, so 0.5
  would be the messaging-only ceiling.

The test plays the gateway (``ChannelRegistered``, ``CHANNEL_CREDENTIALS``); nothing plays
ingest or the dispatcher, whose consumers of the outcomes do not run.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final
from uuid import uuid4

import asyncpg
from nats.js import JetStreamContext

from bench import bench_sender
from bench.bench_sender import fake_meta, prepare, spread_channels, stack
from bench.context import Context
from bench.report import Figure
from zapflow.contracts.channels.v1 import PaceSettings
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import TemplateContent
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested
from zapflow.contracts.subjects import subject_for
from zapflow.runtime.broker import publish_headers
from zapflow.sender.testing import SimChannel

CHANNELS: Final = 16
REQUESTS_PER_SECOND_OF_RUN: Final = 300
"""N = this x the run's duration (1,500 in a full run)."""


async def run(ctx: Context) -> list[Figure]:
    reference = await bench_sender.reference(ctx)
    rate = await _outbound(ctx, int(REQUESTS_PER_SECOND_OF_RUN * ctx.duration))
    return [Figure.against("outbound.sends_per_s", rate, reference)]


def request(channel: SimChannel, i: int) -> SendRequested:
    template = TemplateContent(name="bench_notice", language="pt_BR", body_params=(f"{i}",))
    return SendRequested(
        tenant_id=channel.tenant_id,
        request=SendRequest(
            message_id=uuid4(),
            channel_id=channel.channel_id,
            to=Recipient(phone=f"+5511{(i * 7919) % 10**9:09d}"),
            content=template,
            origin=SendOrigin.API,
            idempotency_key=f"bench-{i}",
        ),
    )


async def publish_requests(js: JetStreamContext, channels: list[SimChannel], per: int) -> int:
    """``per`` requests to distinct recipients on every channel, interleaved; returns how many
    were published (``per`` x channels: what a caller waits for)."""
    for i in range(per):
        for channel in channels:
            event = request(channel, i)
            await js.publish_async(
                subject_for(event), event.model_dump_json().encode(), headers=publish_headers(event)
            )
    async with asyncio.timeout(60):
        await js.publish_async_completed()
    return per * len(channels)


async def _compliance_knows(dsn: str, tenant: str, count: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(30):
            while True:
                known = await conn.fetchval(
                    "SELECT count(*) FROM compliance.channels WHERE tenant_id = $1", tenant
                )
                if known >= count:
                    return
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def _outbound(ctx: Context, wanted: int) -> float:
    channels = spread_channels(CHANNELS, per_partition=1)
    pace = PaceSettings(rate_per_second=100_000, burst=1000)
    async with stack(ctx, "bench_outbound") as st, fake_meta(0.0) as meta:
        await st.start_service("compliance", "compliance")
        await st.start_sender("sender")
        await prepare(st, channels, meta.url, pace)
        await _compliance_knows(st.dsn, channels[0].tenant_id, len(channels))
        total = await publish_requests(st.js, channels, wanted // len(channels))
        with contextlib.suppress(TimeoutError):  # a slow run is measured on what arrived
            async with asyncio.timeout(max(30.0, ctx.duration * 8)):
                await meta.wait_for(total)
        arrivals = await meta.arrivals()
    times = sorted(t for per_number in arrivals.values() for t in per_number)
    if len(times) < total // 10:
        raise RuntimeError(f"only {len(times)} of {total} requests reached the provider")
    lo = len(times) // 10
    hi = len(times) * 9 // 10 if len(times) == total else len(times) - 1
    return (hi - lo) / (times[hi] - times[lo])
