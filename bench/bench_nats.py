"""Raw nats-py JetStream references: sequential publish, pipelined publish, pull fetch + ack.

Every publish carries a ``Nats-Msg-Id`` (deduplication on, as in production) and the webhook body
(:data:`bench.payloads.WEBHOOK_BODY`); streams use file storage in the run's temp dir.

* ``nats.publish.sequential``: ``await js.publish()`` one after another (one round trip each).
* ``nats.publish.async``: ``js.publish_async()`` with at most :data:`ASYNC_WINDOW` acks
  outstanding, timed until every ack is in; compared with the sequential figure.
* ``nats.pull.fetch_ack``: a durable pull consumer doing ``fetch(FETCH_BATCH)`` and ``ack()`` per
  message over a stream filled beforehand.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from bench.context import Context
from bench.jetstream import temp_stream
from bench.payloads import WEBHOOK_BODY, msg_id_headers
from bench.report import Figure
from zapflow.runtime.broker import connect_tooling

ASYNC_WINDOW: Final = 1000
"""Unacknowledged ``publish_async`` calls allowed in flight."""
FETCH_BATCH: Final = 100
"""Messages per pull ``fetch``."""
PREFILL_CAP: Final = 300_000
"""Most messages put in the stream for the fetch benchmark (bounds its memory and time)."""


async def run(ctx: Context) -> list[Figure]:
    nc = await connect_tooling(ctx.nats_url, "bench")
    try:
        js = nc.jetstream(publish_async_max_pending=ASYNC_WINDOW)
        async with temp_stream(js) as subject:
            await _publish_sequential(js, subject, ctx.warmup)
            sequential = await _publish_sequential(js, subject, ctx.duration)
        async with temp_stream(js) as subject:
            await _publish_async(js, subject, ctx.warmup, cap=PREFILL_CAP)
            pipelined = await _publish_async(js, subject, ctx.duration, cap=PREFILL_CAP)
        async with temp_stream(js) as subject:
            fetched = await _fetch_ack(js, subject, ctx.duration)
        await nc.flush()
    finally:
        await nc.close()
    seq = Figure.baseline("nats.publish.sequential", sequential, "msg/s")
    return [
        seq,
        Figure.against("nats.publish.async", pipelined, seq),
        Figure.baseline("nats.pull.fetch_ack", fetched, "msg/s"),
    ]


async def _publish_sequential(js: JetStreamContext, subject: str, seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        await js.publish(subject, WEBHOOK_BODY, headers=msg_id_headers())
        count += 1
    return count / (time.perf_counter() - started)


async def _publish_async(js: JetStreamContext, subject: str, seconds: float, *, cap: int) -> float:
    """Acknowledged messages per second, the wait for the last acks included."""
    futures: list[asyncio.Future[PubAck]] = []
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline and len(futures) < cap:
        futures.append(await js.publish_async(subject, WEBHOOK_BODY, headers=msg_id_headers()))
    async with asyncio.timeout(30):
        await asyncio.gather(*futures)  # raises if any publish was rejected
    return len(futures) / (time.perf_counter() - started)


async def _fetch_ack(js: JetStreamContext, subject: str, seconds: float) -> float:
    """Fill the stream for ``seconds``, then fetch + ack all of it (bounded by ``2 * seconds``)."""
    filled = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and filled < PREFILL_CAP:
        await js.publish_async(subject, WEBHOOK_BODY, headers=msg_id_headers())
        filled += 1
    async with asyncio.timeout(30):
        await js.publish_async_completed()
    sub = await js.pull_subscribe(subject, durable="bench-fetch-ack")
    consumed = 0
    started = time.perf_counter()
    deadline = started + 2 * seconds
    while consumed < filled and time.perf_counter() < deadline:
        try:
            msgs = await sub.fetch(FETCH_BATCH, timeout=1)
        except NatsTimeoutError:
            continue
        for msg in msgs:
            await msg.ack()
        consumed += len(msgs)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    return consumed / elapsed
