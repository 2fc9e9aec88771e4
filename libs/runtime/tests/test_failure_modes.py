"""Failure modes of the runtime against a real nats-server: outages are waited out without
spending deliveries, a hung handler ends in the DLQ, what runs out of deliveries unseen is
dead-lettered from JetStream's advisory, and a crashed task is restarted and shown by /readyz."""

import asyncio
import base64
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from zapflow.contracts.specs import ConsumerSpec, StreamSpec
from zapflow.contracts.streams import ZF_DLQ
from zapflow.embedded import free_port
from zapflow.runtime import broker, dlq
from zapflow.runtime.service import Service
from zapflow.runtime.settings import BaseServiceSettings
from zapflow.testing import unique

pytestmark = pytest.mark.integration


def topology(**consumer: object) -> tuple[StreamSpec, ConsumerSpec, str]:
    name = unique("f").replace("-", "_")
    subject = f"test.{name}"
    stream = StreamSpec(
        name=f"ZF_TEST_{name.upper()}",
        subjects=(f"{subject}.>",),
        retention="limits",
        duplicate_window_s=60,
        max_age_s=3600,
        max_bytes=8 * 1024 * 1024,
        discard="old",
        owner="ingest",
        description="test stream",
    )
    spec = ConsumerSpec(
        durable=f"ingest-{name.replace('_', '-')}",
        stream=stream.name,
        filter_subjects=(f"{subject}.>",),
        owner="ingest",
        description="test consumer",
        ack_wait_s=3,
        max_deliver=3,
    )
    return stream, dataclasses.replace(spec, **consumer), subject  # type: ignore[arg-type]


def settings(nats_url: str) -> BaseServiceSettings:
    return BaseServiceSettings(
        nats_url=nats_url, database_url="postgresql://unused", http_port=free_port(),
        shutdown_grace_s=3,
    )  # fmt: skip


async def publish(js: JetStreamContext, subject: str, body: bytes, tenant: str) -> None:
    await js.publish(subject, body, headers={"Zf-Tenant": tenant, "Nats-Msg-Id": unique("m")})


async def dead_letters(js: JetStreamContext, tenant: str) -> list[dict[str, object]]:
    await broker.declare(js, [ZF_DLQ])
    sub = await js.subscribe(f"zf.dlq.dead_lettered.v1.{tenant}.>", ordered_consumer=True)
    out = []
    try:
        while True:
            msg = await sub.next_msg(timeout=1.0)
            out.append(json.loads(msg.data))
    except TimeoutError:
        return out
    finally:
        await sub.unsubscribe()


async def until(predicate: Callable[[], object], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.05)


async def test_an_outage_is_waited_out_in_place_without_spending_deliveries(
    nats_url: str, js: JetStreamContext
) -> None:
    """The handler meets an unreachable database ten times (more than ``max_deliver``), then
    succeeds: the message is kept (one delivery), acked, nothing is dead-lettered."""
    stream, spec, subject = topology()
    tenant = unique("out")
    deliveries: list[int] = []

    async def handler(msg: Msg) -> None:
        deliveries.append(msg.metadata.num_delivered)
        if len(deliveries) <= 10:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    async def setup(svc: Service) -> None:
        svc.consume(spec, handler)

    svc = Service("ingest", settings(nats_url), streams=[stream, ZF_DLQ], consumers=[spec],
                  setup=setup)  # fmt: skip
    async with svc.running():
        await publish(js, f"{subject}.a", b"kept", tenant)
        await until(lambda: len(deliveries) == 11, 30)
        await until(lambda: True, 0.1)
        info = await js.consumer_info(stream.name, spec.durable)
        for _ in range(50):
            if info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
            info = await js.consumer_info(stream.name, spec.durable)
    assert set(deliveries) == {1}  # retried in place: no nak, no redelivery
    assert (info.num_ack_pending, info.num_pending, info.num_redelivered) == (0, 0, 0)
    assert await dead_letters(js, tenant) == []


async def test_a_hung_handler_is_cut_off_and_ends_in_the_dead_letter_queue(
    nats_url: str, js: JetStreamContext
) -> None:
    stream, spec, subject = topology(ack_wait_s=1.5, max_deliver=2)
    tenant = unique("hung")
    calls: list[int] = []

    async def handler(msg: Msg) -> None:
        calls.append(msg.metadata.num_delivered)
        if msg.data == b"hangs":
            await asyncio.Event().wait()  # forever

    async def setup(svc: Service) -> None:
        svc.consume(spec, handler)

    svc = Service("ingest", settings(nats_url), streams=[stream, ZF_DLQ], consumers=[spec],
                  setup=setup)  # fmt: skip
    async with svc.running():
        await publish(js, f"{subject}.a", b"hangs", tenant)
        await publish(js, f"{subject}.b", b"fine", tenant)
        records: list[dict[str, object]] = []

        async def recorded() -> None:
            while not records:
                records.extend(await dead_letters(js, tenant))

        await asyncio.wait_for(recorded(), 30)
        await until(lambda: 1 in calls and len(calls) >= 3, 10)  # the next message went on
    (record,) = records
    assert base64.b64decode(str(record["original_payload_b64"])) == b"hangs"
    assert record["error_class"] == "zapflow.runtime.consumer.HandlerTimeoutError"
    assert record["delivery_count"] == 2


async def test_what_runs_out_of_deliveries_unsettled_is_dead_lettered_once(
    nats_url: str, nc: Client, js: JetStreamContext
) -> None:
    """A replica stalled on a message (here: a client that fetches and never answers) lets it
    run out of deliveries; the service's watch dead-letters it from JetStream's advisory."""
    stream, spec, subject = topology(ack_wait_s=0.5, max_deliver=2)
    tenant = unique("adv")
    await broker.declare(js, [stream, ZF_DLQ], [spec])
    watch = dlq.MaxDeliveriesWatch(nc, js, "ingest", [spec])
    subs = await watch.start()
    stalled = await js.pull_subscribe_bind(spec.durable, stream=stream.name)
    try:
        await publish(js, f"{subject}.a", b"stuck", tenant)
        for _ in range(2):
            (got,) = await stalled.fetch(1, timeout=5)  # delivered, never settled
            assert got.data == b"stuck"
        records: list[dict[str, object]] = []
        async with asyncio.timeout(15):
            while not records:  # consumers keep pulling: JetStream then gives the message up
                with contextlib.suppress(TimeoutError):
                    assert not await stalled.fetch(1, timeout=0.5)
                records = await dead_letters(js, tenant)
        # the same advisory again (a second replica, a retry) adds no second record
        info = await js.consumer_info(stream.name, spec.durable)
        await watch.handle(_advisory(stream.name, spec.durable, records[0]))
        assert len(await dead_letters(js, tenant)) == 1
    finally:
        for sub in subs:
            await sub.unsubscribe()
        await stalled.unsubscribe()
    (record,) = records
    assert base64.b64decode(str(record["original_payload_b64"])) == b"stuck"
    assert record["error_class"] == "zapflow.runtime.dlq.MaxDeliveriesExceeded"
    assert record["delivery_count"] == 2
    assert record["consumer"] == spec.durable
    assert record["original_subject"] == f"{subject}.a"
    assert info.num_ack_pending == 0


def _advisory(stream: str, durable: str, record: dict[str, object]) -> Msg:
    doc = {"stream": stream, "consumer": durable, "deliveries": 2,
           "stream_seq": record["original_sequence"]}  # fmt: skip
    return Msg(_client=None, subject="advisory", data=json.dumps(doc).encode())  # type: ignore[arg-type]


async def test_a_consumer_whose_durable_vanished_is_restarted_and_recreates_it(
    nats_url: str, js: JetStreamContext
) -> None:
    stream, spec, subject = topology()
    tenant = unique("gone")
    seen: list[bytes] = []

    async def handler(msg: Msg) -> None:
        seen.append(msg.data)

    async def setup(svc: Service) -> None:
        svc.consume(spec, handler)

    svc = Service("ingest", settings(nats_url), streams=[stream, ZF_DLQ], consumers=[spec],
                  setup=setup)  # fmt: skip
    async with svc.running():
        await publish(js, f"{subject}.a", b"before", tenant)
        await until(lambda: seen == [b"before"], 10)
        await js.delete_consumer(stream.name, spec.durable)
        await publish(js, f"{subject}.b", b"after", tenant)
        await until(lambda: b"after" in seen, 20)


async def test_a_crashed_background_task_is_restarted_and_readyz_names_it_meanwhile(
    nats_url: str,
) -> None:
    runs: list[int] = []
    crash = asyncio.Event()

    async def loop(stop: asyncio.Event) -> None:
        runs.append(len(runs))
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(crash.wait())}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if crash.is_set():
            crash.clear()
            raise RuntimeError("relay bug")

    async def setup(svc: Service) -> None:
        svc.supervise("relay", loop)

    s = settings(nats_url)
    svc = Service("ingest", s, setup=setup)
    async with svc.running(), httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as c:
        ready = await c.get("/readyz")
        assert ready.json()["checks"] == {"nats": True, "task:relay": True}
        crash.set()
        await until(lambda: runs == [0], 1)
        await asyncio.sleep(0.2)
        down = await c.get("/readyz")
        assert (down.status_code, down.json()["checks"]["task:relay"]) == (503, False)
        await until(lambda: runs == [0, 1], 5)
        assert (await c.get("/readyz")).status_code == 200
