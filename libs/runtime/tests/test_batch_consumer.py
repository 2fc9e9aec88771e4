"""A consumer with a batch handler: one call per fetch, acked after it; infrastructure errors
waited out for the whole batch; any other failure falls back to the messages one by one, so a
bad message is dead-lettered alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from zapflow.contracts.errors import PermanentError
from zapflow.contracts.specs import ConsumerSpec, StreamSpec
from zapflow.contracts.streams import ZF_DLQ
from zapflow.embedded import free_port
from zapflow.runtime.service import Service
from zapflow.runtime.settings import BaseServiceSettings
from zapflow.testing import unique

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def topology() -> tuple[StreamSpec, ConsumerSpec, str]:
    name = unique("b").replace("-", "_")
    subject = f"test.{name}"
    stream = StreamSpec(
        name=f"ZF_TEST_{name.upper()}", subjects=(f"{subject}.>",), retention="limits",
        duplicate_window_s=60, max_age_s=3600, max_bytes=8 * MiB, discard="old",
        owner="ingest", description="batch test stream",
    )  # fmt: skip
    spec = ConsumerSpec(
        durable=f"ingest-{name.replace('_', '-')}", stream=stream.name,
        filter_subjects=(f"{subject}.>",), owner="ingest", description="batch test consumer",
        ack_wait_s=5, max_deliver=3,
    )  # fmt: skip
    return stream, spec, subject


def settings(nats_url: str) -> BaseServiceSettings:
    return BaseServiceSettings(
        nats_url=nats_url, database_url="postgresql://unused", http_port=free_port(),
        shutdown_grace_s=3,
    )  # fmt: skip


async def until(predicate: Callable[[], object], within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.05)


async def settled(js: JetStreamContext, spec: ConsumerSpec) -> tuple[int, int]:
    info = await js.consumer_info(spec.stream, spec.durable)
    return info.num_ack_pending, info.num_pending


async def fill(js: JetStreamContext, subject: str, bodies: Sequence[bytes], tenant: str) -> None:
    for body in bodies:
        headers = {"Zf-Tenant": tenant, "Nats-Msg-Id": unique("m")}
        await js.publish(f"{subject}.x", body, headers=headers)


async def test_a_fetch_is_one_batch_call_acked_after_it(
    nats_url: str, js: JetStreamContext
) -> None:
    stream, spec, subject = topology()
    tenant = unique("t")
    seen: list[bytes] = []  # in the order handled, by either handler
    batches: list[int] = []
    unacked_during: list[tuple[int, int]] = []

    async def one(msg: Msg) -> None:  # a fetch of one message
        seen.append(msg.data)

    async def many(msgs: Sequence[Msg]) -> None:
        await asyncio.sleep(0.2)  # while it runs, nothing of the batch is acked
        unacked_during.append(((await settled(js, spec))[0], len(msgs)))
        batches.append(len(msgs))
        seen.extend(m.data for m in msgs)

    async def setup(svc: Service) -> None:
        svc.consume(spec, one, batch=50, batch_handler=many)

    await js.add_stream(name=stream.name, subjects=list(stream.subjects))
    await fill(js, subject, [str(i).encode() for i in range(100)], tenant)
    svc = Service("ingest", settings(nats_url), streams=[stream, ZF_DLQ], consumers=[spec],
                  setup=setup)  # fmt: skip
    async with svc.running():
        await until(lambda: len(seen) == 100)
        await until(lambda: True, 0.2)
        left = await settled(js, spec)
    assert seen == [str(i).encode() for i in range(100)]  # each once, in stream order
    assert len(batches) >= 2  # whole fetches, not one message at a time
    assert all(pending == size for pending, size in unacked_during)
    assert left == (0, 0)


async def test_an_outage_is_waited_out_for_the_whole_batch(
    nats_url: str, js: JetStreamContext
) -> None:
    stream, spec, subject = topology()
    tenant = unique("t")
    calls: list[int] = []
    singles: list[bytes] = []

    async def one(msg: Msg) -> None:
        singles.append(msg.data)

    async def many(msgs: Sequence[Msg]) -> None:
        calls.append(len(msgs))
        if len(calls) <= 4:  # the database is away (more times than max_deliver)
            raise ConnectionRefusedError(111, "Connect call failed")

    async def setup(svc: Service) -> None:
        svc.consume(spec, one, batch=10, batch_handler=many)

    await js.add_stream(name=stream.name, subjects=list(stream.subjects))
    await fill(js, subject, [b"a", b"b", b"c"], tenant)
    svc = Service("ingest", settings(nats_url), streams=[stream, ZF_DLQ], consumers=[spec],
                  setup=setup)  # fmt: skip
    async with svc.running():
        await until(lambda: len(calls) == 5)
        await until(lambda: True, 0.2)
        info = await js.consumer_info(spec.stream, spec.durable)
    assert calls == [3, 3, 3, 3, 3]  # the same batch, retried in place
    assert singles == []
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)


async def test_a_failed_batch_is_handled_one_by_one_and_only_the_bad_message_dead_lettered(
    nats_url: str, js: JetStreamContext
) -> None:
    stream, spec, subject = topology()
    tenant = unique("t")
    singles: list[bytes] = []

    async def one(msg: Msg) -> None:
        if msg.data == b"bad":
            raise PermanentError("cannot be handled", code="bad")
        singles.append(msg.data)

    async def many(msgs: Sequence[Msg]) -> None:
        if any(m.data == b"bad" for m in msgs):
            raise ValueError("one of them is bad")

    async def setup(svc: Service) -> None:
        svc.consume(spec, one, batch=10, batch_handler=many)

    await js.add_stream(name=stream.name, subjects=list(stream.subjects))
    await fill(js, subject, [b"a", b"bad", b"c"], tenant)
    svc = Service("ingest", settings(nats_url), streams=[stream, ZF_DLQ], consumers=[spec],
                  setup=setup)  # fmt: skip
    async with svc.running():
        await until(lambda: len(singles) == 2)
        await until(lambda: True, 0.3)
        left = await settled(js, spec)
        dead = await js.stream_info("ZF_DLQ", subjects_filter=f"zf.dlq.dead_lettered.v1.{tenant}.>")
    assert singles == [b"a", b"c"]
    assert left == (0, 0)
    assert dead.state.messages == 1


async def test_many_publishes_are_pipelined_acked_in_order_and_deduplicated(
    js: JetStreamContext,
) -> None:
    from uuid import uuid4

    from zapflow.contracts.channels.v1 import ChannelDisabled
    from zapflow.runtime.broker import Publisher

    stream, _, subject = topology()
    await js.add_stream(name=stream.name, subjects=list(stream.subjects))
    tenant = unique("t")
    events = [ChannelDisabled(tenant_id=tenant, channel_id=f"c{i}", id=uuid4()) for i in range(200)]
    items = [(f"{subject}.{i}", e, None) for i, e in enumerate(events)]
    publish = Publisher(js)
    acks = await publish.many(items)
    assert [a.seq for a in acks] == list(range(1, 201))
    again = await publish.many(items[:10])  # the same ids: stored once
    assert all(a.duplicate for a in again)
    assert (await js.stream_info(stream.name)).state.messages == 200
    with pytest.raises(Exception):  # noqa: B017, PT011 - no stream stores it: refused
        await publish.many([("nowhere.at.all", events[0], None)])
