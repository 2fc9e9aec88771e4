"""Losing a NATS node mid-run loses and duplicates nothing: the whole system on a 3-node cluster.

Three nats-servers form a JetStream cluster on loopback (``zapflow.embedded.NatsCluster``);
``zapflow up`` runs the six services and the simulator against it with ``NATS_URL`` naming all
three nodes and ``ZF_STREAM_REPLICAS=3``, so every stream, durable and the lease bucket are R3.
The test sends templates through the REST API as an integrator would (retrying a failed request
with the same ``Idempotency-Key``), SIGKILLs the node leading ``ZF_SENDING`` half-way, sends the
rest, and lets ``zapflow audit`` compare what the simulator accepted with what Zapflow recorded.
``ZF_FAULT_LOG=<file>`` keeps the services' output of a run for a look afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js import JetStreamContext

from zapflow.contracts.streams import ALL_STREAMS, ZF_SENDING
from zapflow.contracts.types import SERVICES
from zapflow.embedded import NatsCluster, free_port
from zapflow.runtime.partitions import BUCKET
from zapflow.testing import DatabaseFactory, make_scratch_dir, nats_config
from zapflow.testing import connect as connect_nats

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
KEY = "zf_demo_local_key"
CHANNEL = "demo-meta"
RECIPIENTS = tuple(f"+55119877{i:05d}" for i in range(12))
PER_RECIPIENT = 10


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = make_scratch_dir("zapflow-cluster-fault-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster(scratch: Path) -> Iterator[NatsCluster]:
    with NatsCluster(3, root=scratch / "nats", config=nats_config()) as started:
        yield started


@pytest.fixture
def stack(
    cluster: NatsCluster, fresh_db: DatabaseFactory, scratch: Path
) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "NATS_URL": cluster.url,
        "ZF_STREAM_REPLICAS": "3",
        "DATABASE_URL": fresh_db("cluster_fault"),
        "ZF_HOME": str(scratch / "home"),
        "ZF_LOG_FORMAT": "json",
    }
    for service in (*SERVICES, "simulator"):
        env[f"ZF_{service.upper()}_HTTP_PORT"] = str(free_port())
    log_path = Path(os.environ.get("ZF_FAULT_LOG", scratch / "up.log"))
    with log_path.open("w") as log:
        up = subprocess.Popen(
            [BIN / "zapflow", "up", "--ready-timeout", "60"], env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 90
            while "Ctrl-C stops everything" not in log_path.read_text():
                assert up.poll() is None, log_path.read_text()[-5000:]
                assert time.monotonic() < deadline, log_path.read_text()[-5000:]
                time.sleep(0.2)
            yield env
        finally:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()


@pytest.fixture
async def js(cluster: NatsCluster) -> AsyncIterator[JetStreamContext]:
    nc = await connect_nats(cluster.url, max_reconnect_attempts=-1)
    yield nc.jetstream()
    await nc.close()


def template(phone: str, n: int) -> dict[str, Any]:
    return {
        "channel_id": CHANNEL,
        "to": phone,
        "content": {
            "kind": "template",
            "name": "order_update",
            "language": "pt_BR",
            "body_params": [f"#{n}"],
            "rendered_text": f"Pedido #{n} de {phone} saiu para entrega.",
        },
    }


async def send(api: httpx.AsyncClient, phone: str, n: int) -> str:
    """POST one send until the gateway accepts it; a retry carries the same Idempotency-Key."""
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = await api.post(
                "/v1/messages", json=template(phone, n), headers={"Idempotency-Key": f"{phone}-{n}"}
            )
            if answer.status_code == 202:
                return str(answer.json()["message_id"])
            assert answer.status_code >= 500, answer.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"send {phone}-{n} never accepted"
        await asyncio.sleep(0.2)


async def send_round(api: httpx.AsyncClient, rounds: range) -> set[str]:
    ids: set[str] = set()
    for n in rounds:  # in order per recipient, recipients concurrently
        ids |= set(await asyncio.gather(*(send(api, phone, n) for phone in RECIPIENTS)))
    return ids


async def assert_everything_is_r3(js: JetStreamContext) -> None:
    for stream in ALL_STREAMS:
        info = await js.stream_info(stream.name)
        assert info.config.num_replicas == 3, stream.name
        assert info.cluster is not None, stream.name
        assert len(info.cluster.replicas or []) == 2, stream.name
    deadline = time.monotonic() + 30  # created by the first replica that takes a lease
    while True:
        try:
            leases = await js.stream_info(f"KV_{BUCKET}")
            break
        except nats.js.errors.NotFoundError:
            assert time.monotonic() < deadline, "no lease bucket"
            await asyncio.sleep(0.5)
    assert leases.config.num_replicas == 3
    for durable in ("compliance-requests-p0", "sender-approved-p0", "ingest-outbound"):
        stream = "ZF_SENDER" if durable.startswith("sender") else ZF_SENDING.name
        consumer = await js.consumer_info(stream, durable)
        assert consumer.cluster is not None
        assert len(consumer.cluster.replicas or []) == 2


def audit(env: dict[str, str]) -> dict[str, Any] | None:
    """The demo channel's audit; None while JetStream cannot be read (a stream's failover)."""
    done = subprocess.run(
        [
            BIN / "zapflow",
            "audit",
            "--log",
            str(Path(env["ZF_HOME"]) / "simulator" / "audit.jsonl"),
            "--tenant",
            "demo",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode == 2 and "cannot read JetStream" in done.stderr:
        return None
    assert done.returncode in (0, 1), done.stdout + done.stderr
    (channel,) = [c for c in json.loads(done.stdout)["channels"] if c["channel_id"] == CHANNEL]
    return dict(channel)


async def test_killing_a_nats_node_mid_run_loses_and_duplicates_nothing(
    cluster: NatsCluster, stack: dict[str, str], js: JetStreamContext
) -> None:
    await assert_everything_is_r3(js)
    gateway = f"http://127.0.0.1:{stack['ZF_GATEWAY_HTTP_PORT']}"
    half = PER_RECIPIENT // 2
    async with httpx.AsyncClient(
        base_url=gateway, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    ) as api:
        accepted = await send_round(api, range(half))
        leader = (await js.stream_info(ZF_SENDING.name)).cluster
        assert leader is not None
        assert leader.leader
        victim = cluster.index_of(leader.leader)
        cluster.kill(victim)  # sends of the first half are still on their way
        accepted |= await send_round(api, range(half, PER_RECIPIENT))
    total = len(RECIPIENTS) * PER_RECIPIENT
    assert len(accepted) == total

    deadline = time.monotonic() + 180
    while True:
        report = await asyncio.to_thread(audit, stack)
        if report and report["accepted"] == total and report["recorded_sent"] == total:
            break
        assert time.monotonic() < deadline, report
        await asyncio.sleep(2)
    assert report is not None
    assert report["requested"] == total, report
    assert (report["lost"], report["duplicated"], report["out_of_order"]) == (0, 0, 0), report
    assert cluster.running() == sorted({0, 1, 2} - {victim})
