"""The consumer's ack policy and the service lifecycle, against a real nats-server and Postgres."""

import asyncio
import base64
import json
from pathlib import Path

import httpx
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.contracts.specs import ConsumerSpec, MiB, StreamSpec
from zapflow.contracts.streams import ZF_DLQ
from zapflow.embedded import free_port
from zapflow.runtime import broker
from zapflow.runtime.consumer import Handler
from zapflow.runtime.service import Service
from zapflow.runtime.settings import BaseServiceSettings
from zapflow.testing import unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration


def topology() -> tuple[StreamSpec, ConsumerSpec, str]:
    name = unique("t").replace("-", "_")
    subject = f"test.{name}"
    stream = StreamSpec(
        name=f"ZF_TEST_{name.upper()}",
        subjects=(f"{subject}.>",),
        retention="limits",
        duplicate_window_s=60,
        max_age_s=3600,
        max_bytes=8 * MiB,
        discard="old",
        owner="ingest",
        description="test stream",
    )
    consumer = ConsumerSpec(
        durable=f"ingest-{name.replace('_', '-')}",
        stream=stream.name,
        filter_subjects=(f"{subject}.>",),
        owner="ingest",
        description="test consumer",
        ack_wait_s=5,
        max_deliver=3,
    )
    return stream, consumer, subject


def settings(nats_url: str, dsn: str = "postgresql://unused") -> BaseServiceSettings:
    return BaseServiceSettings(
        nats_url=nats_url, database_url=dsn, http_port=free_port(), shutdown_grace_s=3
    )


async def publish(js: JetStreamContext, subject: str, body: bytes, tenant: str = "acme") -> None:
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


async def test_success_is_acked_after_the_handler_and_transient_errors_retry(
    nats_url: str, js: JetStreamContext
) -> None:
    stream, consumer, subject = topology()
    seen: list[tuple[bytes, int]] = []
    done = asyncio.Event()

    async def handler(msg: Msg) -> None:
        seen.append((msg.data, msg.metadata.num_delivered))
        if msg.data == b"flaky" and msg.metadata.num_delivered == 1:
            raise TransientError("try later", retry_after=0.05)
        if len(seen) == 3:
            done.set()

    svc = Service(
        "ingest",
        settings(nats_url),
        streams=[stream, ZF_DLQ],
        consumers=[consumer],
        setup=lambda s: _register(s, consumer, handler),
    )
    async with svc.running():
        await publish(js, f"{subject}.a", b"ok")
        await publish(js, f"{subject}.b", b"flaky")
        await asyncio.wait_for(done.wait(), 10)
        for _ in range(50):  # the ack follows the handler's return
            info = await js.consumer_info(stream.name, consumer.durable)
            if info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
    assert (b"ok", 1) in seen
    assert [n for body, n in seen if body == b"flaky"] == [1, 2]
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def _register(svc: Service, spec: ConsumerSpec, handler: Handler) -> None:
    svc.consume(spec, handler)


async def test_permanent_errors_and_exhausted_retries_are_dead_lettered_byte_for_byte(
    nats_url: str, js: JetStreamContext
) -> None:
    stream, consumer, subject = topology()
    tenant = unique("dl")
    attempts: dict[bytes, int] = {}

    async def handler(msg: Msg) -> None:
        attempts[msg.data] = msg.metadata.num_delivered
        if msg.data == b"poison":
            raise PermanentError("cannot ever work", code="invalid")
        raise RuntimeError("bug")  # retried until max_deliver, then dead-lettered

    svc = Service(
        "ingest",
        settings(nats_url),
        streams=[stream, ZF_DLQ],
        consumers=[consumer],
        setup=lambda s: _register(s, consumer, handler),
    )
    async with svc.running():
        await publish(js, f"{subject}.x", b"poison", tenant)
        await publish(js, f"{subject}.y", b"buggy", tenant)
        for _ in range(100):
            if attempts.get(b"buggy") == consumer.max_deliver:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        records = await dead_letters(js, tenant)
    assert attempts == {b"poison": 1, b"buggy": consumer.max_deliver}
    by_payload = {base64.b64decode(str(r["original_payload_b64"])): r for r in records}
    assert set(by_payload) == {b"poison", b"buggy"}
    assert by_payload[b"poison"]["error_class"] == "zapflow.contracts.errors.PermanentError"
    assert by_payload[b"poison"]["delivery_count"] == 1
    assert by_payload[b"buggy"]["error_class"] == "builtins.RuntimeError"
    assert by_payload[b"buggy"]["delivery_count"] == consumer.max_deliver
    assert by_payload[b"buggy"]["original_subject"] == f"{subject}.y"
    assert by_payload[b"buggy"]["service"] == "ingest"


async def test_service_serves_health_readiness_and_metrics_then_stops_cleanly(
    nats_url: str, fresh_db: DatabaseFactory, tmp_path: Path
) -> None:
    (tmp_path / "0001_x.sql").write_text("CREATE TABLE x (id int);")
    s = settings(nats_url, fresh_db("svc"))
    svc = Service("dispatcher", s, migrations=tmp_path)
    async with svc.running(), httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as c:
        assert (await c.get("/healthz")).json() == {"service": "dispatcher", "status": "ok"}
        ready = await c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"nats": True, "database": True}
        assert "zf_ready 1.0" in (await c.get("/metrics")).text
        assert await svc.pool.fetchval("SELECT count(*) FROM x") == 0
    async with httpx.AsyncClient() as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"http://127.0.0.1:{s.http_port}/healthz")


async def test_partitioned_consumers_process_every_partition_and_stop_promptly(
    nats_url: str, js: JetStreamContext
) -> None:
    name = unique("pt").replace("-", "_")
    stream = StreamSpec(
        name=f"ZF_TEST_{name.upper()}",
        subjects=(f"test.{name}.>",),
        retention="workqueue",
        duplicate_window_s=60,
        max_age_s=3600,
        max_bytes=8 * MiB,
        discard="new",
        owner="sender",
        description="partitioned test stream",
    )
    specs = [
        ConsumerSpec(
            durable=f"sender-{name.replace('_', '-')}-p{p}",
            stream=stream.name,
            filter_subjects=(f"test.{name}.p{p}.>",),
            owner="sender",
            description="partition",
            partition=p,
        )
        for p in range(16)
    ]
    seen: set[bytes] = set()

    async def handler(msg: Msg) -> None:
        seen.add(msg.data)

    async def setup(svc: Service) -> None:
        svc.consume_partitioned(specs, handler)

    svc = Service(
        "sender", settings(nats_url), streams=[stream, ZF_DLQ], consumers=specs, setup=setup
    )
    async with svc.running():
        for p in range(16):
            await publish(js, f"test.{name}.p{p}.x", f"m{p}".encode())
        for _ in range(100):
            if len(seen) == 16:
                break
            await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
    assert len(seen) == 16
    assert asyncio.get_running_loop().time() - started < 4  # 16 partitions released together


async def test_a_declared_consumer_that_no_handler_reads_stops_the_start(
    nats_url: str, js: JetStreamContext
) -> None:
    stream, consumer, _ = topology()
    svc = Service("ingest", settings(nats_url), streams=[stream], consumers=[consumer])
    with pytest.raises(RuntimeError, match=consumer.durable):
        await svc.start()
    assert svc.stopping.is_set()

    read = Service(
        "ingest",
        settings(nats_url),
        streams=[stream],
        consumers=[consumer],
        setup=lambda s: _register(s, consumer, _ignore),
    )
    async with read.running():
        pass


async def _ignore(msg: Msg) -> None:
    return None
