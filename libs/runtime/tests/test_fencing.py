"""Fencing and supervision of partitions: a replica paused past its lease does no more work when it
wakes, and a partition's crashed work is restarted or its lease given up (never renewed for a
dead consumer)."""

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from nats.aio.client import Client

from zapflow.contracts.specs import ConsumerSpec, StreamSpec
from zapflow.contracts.streams import ZF_DLQ
from zapflow.embedded import NatsServer
from zapflow.runtime import broker
from zapflow.runtime.partitions import Ownership, PartitionLeases, PartitionSupervisor
from zapflow.testing import connect as connect_nats
from zapflow.testing import nats_config, unique

pytestmark = pytest.mark.integration

PARTITIONS = 4


async def until(predicate: Callable[[], object], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.05)


async def noop(_: int) -> None:
    return None


async def test_a_lease_blocked_past_its_validity_is_not_held_and_never_renewed(
    nats_url: str,
) -> None:
    nc = await connect_nats(nats_url)
    leases = PartitionLeases(nc.jetstream(), unique("grp"), 1, ttl_s=3, renew_s=0.5)
    stop = asyncio.Event()
    released: list[int] = []

    async def on_released(p: int) -> None:
        released.append(p)

    task = asyncio.create_task(leases.run(stop, noop, on_released))
    try:
        await until(lambda: 0 in leases.owned, 5)
        first = leases.ownership(0)
        assert first.held()
        time.sleep(leases.valid_s + 0.2)  # noqa: ASYNC251 -- the point: a blocked event loop
        assert not first.held()  # known at once, before any await, without asking NATS
        await until(lambda: released == [0], 5)  # released, not renewed...
        await until(lambda: 0 in leases.owned, 5)  # ...and taken again under a new token
        second = leases.ownership(0)
        assert second.token > first.token
        assert second.held()
        assert not first.held()
    finally:
        stop.set()
        await task
        await nc.close()


# -- supervision ---------------------------------------------------------------------------------


def specs(name: str, count: int = 1) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            durable=f"compliance-{name}-p{p}", stream="ZF_UNUSED", owner="compliance",
            filter_subjects=(f"test.{name}.p{p}.>",), description="partition", partition=p,
        )
        for p in range(count)
    ]  # fmt: skip


@dataclass
class Work:
    """A partition's work that crashes ``crashes`` times (then runs until stopped)."""

    ownership: Ownership
    crashes: list[int]
    runs: list[int] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        self.runs.append(self.ownership.token)
        if self.crashes and self.crashes[0] > 0:
            self.crashes[0] -= 1
            raise RuntimeError("consumer crashed")
        await self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()

    async def fetching_stopped(self) -> None:
        return None


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Client]:
    nc = await connect_nats(nats_url)
    yield nc
    await nc.close()


async def test_a_crashed_partition_work_is_restarted_while_the_lease_is_ours(bus: Client) -> None:
    made: list[Work] = []
    crashes = [2]

    def make(_: ConsumerSpec, ownership: Ownership) -> Work:
        made.append(Work(ownership, crashes))
        return made[-1]

    sup = PartitionSupervisor(bus.jetstream(), specs(unique("c")), make, ttl_s=3, renew_s=0.5,
                              restart_backoff_s=0.1)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(sup.run(stop))
    try:
        await until(lambda: len(made) == 3, 10)  # two crashes, then a third work that runs
        assert len({w.ownership.token for w in made}) == 1  # the same ownership all along
        assert sup.leases.holds(0)
        assert sup.works[0] is made[-1]
    finally:
        stop.set()
        await task


async def test_a_partition_work_that_keeps_crashing_gives_its_lease_up(bus: Client) -> None:
    """The lease goes to a replica whose work runs (and is not taken back meanwhile)."""
    name = unique("g")
    doomed: list[Work] = []
    healthy: list[Work] = []

    def make_doomed(_: ConsumerSpec, ownership: Ownership) -> Work:
        doomed.append(Work(ownership, [1]))  # every work crashes
        return doomed[-1]

    def make_healthy(_: ConsumerSpec, ownership: Ownership) -> Work:
        healthy.append(Work(ownership, [0]))
        return healthy[-1]

    first = PartitionSupervisor(
        bus.jetstream(), specs(name), make_doomed,
        ttl_s=3, renew_s=0.3, restart_backoff_s=0.05, restarts=2, replica_id="doomed",
    )  # fmt: skip
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(first.run(stops[0]))]
    try:
        await until(lambda: doomed, 5)
        second = PartitionSupervisor(bus.jetstream(), specs(name), make_healthy, ttl_s=3,
                                     renew_s=0.3, replica_id="healthy")  # fmt: skip
        tasks.append(asyncio.create_task(second.run(stops[1])))
        await until(lambda: healthy and second.leases.holds(0), 10)
        assert len(doomed) == 3  # the first run and two restarts, then the lease was given up
        assert not first.leases.holds(0)
        await asyncio.sleep(1.5)  # several rounds: the doomed replica does not take it back
        assert second.leases.holds(0)
        assert len(doomed) == 3
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)


# -- a real replica paused past its lease ----------------------------------------------------------

REPLICA = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from zapflow.contracts.specs import ConsumerSpec, StreamSpec
    from zapflow.runtime import logging
    from zapflow.runtime.service import Service
    from zapflow.runtime.settings import BaseServiceSettings

    url, name, replica, port, partitions = sys.argv[1:6]
    logging.configure("compliance", "INFO", "json")
    stream = StreamSpec(
        name=f"ZF_TEST_{name.upper()}", subjects=(f"test.{name}.>",), retention="workqueue",
        duplicate_window_s=60, max_age_s=3600, max_bytes=8 * 1024 * 1024, discard="new",
        owner="compliance", description="fencing test",
    )
    specs = [
        ConsumerSpec(durable=f"compliance-{name.replace('_', '-')}-p{p}",
                     stream=f"ZF_TEST_{name.upper()}",
                     owner="compliance", filter_subjects=(f"test.{name}.p{p}.>",),
                     description="partition", partition=p, ack_wait_s=30)
        for p in range(int(partitions))
    ]

    async def handler(msg):
        await asyncio.sleep(0.05)  # a little work per message, so a backlog builds
        p, i = json.loads(msg.data)
        print(json.dumps({"r": replica, "p": p, "i": i, "t": time.time()}), flush=True)

    async def setup(svc):
        svc.consume_partitioned(specs, handler, batch=64, ttl_s=3, renew_s=0.5)

    settings = BaseServiceSettings(nats_url=url, http_port=int(port), shutdown_grace_s=2)
    service = Service("compliance", settings, streams=[stream], consumers=specs, setup=setup)
    asyncio.run(service.run_until_signalled())
    """
)


@dataclass
class Replica:
    name: str
    proc: asyncio.subprocess.Process
    handled: list[dict[str, float]] = field(default_factory=list)
    owned: set[int] = field(default_factory=set)
    acquired_at: list[float] = field(default_factory=list)

    async def read(self) -> None:
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        await asyncio.gather(self._lines(self.proc.stdout), self._lines(self.proc.stderr))

    async def _lines(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if "i" in doc:
                self.handled.append(doc)
            elif doc.get("msg") == "lease acquired":
                self.owned.add(doc["partition"])
                self.acquired_at.append(datetime.fromisoformat(doc["ts"]).timestamp())
            elif doc.get("msg") in ("lease released", "lease lost", "lease not renewed in time"):
                self.owned.discard(doc["partition"])


async def test_a_replica_paused_past_its_lease_touches_nothing_when_it_wakes(
    tmp_path: Path,
) -> None:
    """SIGSTOP the owner of two partitions past the lease TTL while the other replica takes them
    over, SIGCONT it: it finishes at most the message it had in hand and fetches nothing more;
    the new owner gets what it had fetched at once, and every partition is handled in order."""
    from zapflow.embedded import free_port

    name = unique("fence").replace("-", "_")
    stream = StreamSpec(
        name=f"ZF_TEST_{name.upper()}", subjects=(f"test.{name}.>",), retention="workqueue",
        duplicate_window_s=60, max_age_s=3600, max_bytes=8 * 1024 * 1024, discard="new",
        owner="compliance", description="fencing test",
    )  # fmt: skip
    per_partition = 120
    async with NatsServer(store_dir=tmp_path / "nats", config=nats_config()) as server:
        bus = await connect_nats(server.url)
        js = bus.jetstream()
        await broker.declare(js, [stream, ZF_DLQ])
        replicas: list[Replica] = []
        readers: list[asyncio.Task[None]] = []
        try:
            for r in ("a", "b"):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", REPLICA, server.url, name, r, str(free_port()),
                    str(PARTITIONS), stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                replicas.append(Replica(r, proc))
                readers.append(asyncio.create_task(replicas[-1].read()))
                await until(lambda: replicas[-1].owned, 15)
            a, b = replicas
            await until(lambda: len(a.owned) == len(b.owned) == PARTITIONS // 2, 15)
            for i in range(per_partition):
                for p in range(PARTITIONS):
                    await js.publish(f"test.{name}.p{p}.x", json.dumps([p, i]).encode())
            await until(lambda: len(a.handled) >= 20, 15)
            os.kill(a.proc.pid, signal.SIGSTOP)
            victim = set(a.owned)
            await until(lambda: victim <= b.owned, 15)  # taken over after the TTL
            await until(lambda: sum(1 for h in b.handled if h["p"] in victim) >= 20, 15)
            woke = time.time()
            os.kill(a.proc.pid, signal.SIGCONT)
            await until(lambda: _first_handled(replicas) == PARTITIONS * per_partition, 60)
            await asyncio.sleep(1)  # anything late from the woken replica would show now
        finally:
            for replica in replicas:
                if replica.proc.returncode is None:
                    os.kill(replica.proc.pid, signal.SIGCONT)
                    replica.proc.terminate()
                    await replica.proc.wait()
            await asyncio.gather(*readers, return_exceptions=True)
            await bus.close()
    # until it takes a partition again (a fair share after the rebalance), the woken replica
    # finishes at most the message it had in hand on each partition, and fetches nothing
    retaken = min((t for t in a.acquired_at if t > woke), default=float("inf"))
    after_waking = [h for h in a.handled if woke < h["t"] < retaken]
    assert len(after_waking) <= len(victim), after_waking
    for p in range(PARTITIONS):
        order = [int(h["i"]) for h in sorted(_all(replicas), key=lambda h: h["t"]) if h["p"] == p]
        firsts = list(dict.fromkeys(order))
        assert firsts == list(range(per_partition)), (p, order)


def _all(replicas: list[Replica]) -> list[dict[str, float]]:
    return [h for r in replicas for h in r.handled]


def _first_handled(replicas: list[Replica]) -> int:
    return len({(h["p"], h["i"]) for h in _all(replicas)})
