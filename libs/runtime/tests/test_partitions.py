"""Partition leases: exclusive ownership, fair shares, hand-over within seconds of a SIGKILL."""

import asyncio
import os
import signal
import sys
import textwrap
import time

import pytest

from zapflow.runtime.partitions import BUCKET, BUCKET_MAX_BYTES, PartitionLeases
from zapflow.testing import connect as connect_nats
from zapflow.testing import unique

pytestmark = pytest.mark.integration


class Ledger:
    """Who owns what; fails the test the moment two replicas hold one partition."""

    def __init__(self) -> None:
        self.owner: dict[int, str] = {}
        self.overlaps: list[int] = []

    def callbacks(self, replica: str) -> tuple[object, object]:
        async def acquired(p: int) -> None:
            if p in self.owner:
                self.overlaps.append(p)
            self.owner[p] = replica

        async def released(p: int) -> None:
            assert self.owner.pop(p) == replica

        return acquired, released

    def count(self, replica: str) -> int:
        return sum(1 for r in self.owner.values() if r == replica)


async def wait_for(predicate: object, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {within}s")


async def test_replicas_share_partitions_fairly_and_never_overlap(nats_url: str) -> None:
    group = unique("grp")
    ledger = Ledger()
    conns = [await connect_nats(nats_url) for _ in range(3)]
    stops = [asyncio.Event() for _ in conns]
    leases = [
        PartitionLeases(nc.jetstream(), group, 8, ttl_s=3, renew_s=0.5, replica_id=f"r{i}")
        for i, nc in enumerate(conns)
    ]
    tasks = []
    try:
        a_cb = ledger.callbacks("r0")
        tasks.append(asyncio.create_task(leases[0].run(stops[0], *a_cb)))  # type: ignore[arg-type]
        await wait_for(lambda: ledger.count("r0") == 8, 5)
        for i in (1, 2):
            cb = ledger.callbacks(f"r{i}")
            tasks.append(asyncio.create_task(leases[i].run(stops[i], *cb)))  # type: ignore[arg-type]
        await wait_for(
            lambda: (
                sorted(ledger.count(f"r{i}") for i in range(3)) == [2, 3, 3]
                and len(ledger.owner) == 8
            ),
            10,
        )
        stops[0].set()  # a clean shutdown hands its partitions back at once
        await tasks[0]
        await wait_for(lambda: sorted(ledger.count(f"r{i}") for i in (1, 2)) == [4, 4], 10)
        assert ledger.overlaps == []
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for nc in conns:
            await nc.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from zapflow.runtime.broker import connect_tooling
    from zapflow.runtime.partitions import PartitionLeases

    async def main():
        nc = await connect_tooling(sys.argv[1], "lease-child")
        leases = PartitionLeases(nc.jetstream(), sys.argv[2], 4, replica_id="doomed")
        async def acquired(p):
            print(f"acquired {p}", flush=True)
        async def released(p):
            print(f"released {p}", flush=True)
        await leases.run(asyncio.Event(), acquired, released)

    asyncio.run(main())
    """
)


async def test_partitions_of_a_killed_replica_move_within_ten_seconds(nats_url: str) -> None:
    group = unique("grp")
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, nats_url, group, stdout=asyncio.subprocess.PIPE
    )
    nc = await connect_nats(nats_url)
    stop = asyncio.Event()
    ledger = Ledger()
    task = None
    try:
        assert child.stdout is not None
        acquired = [(await child.stdout.readline()).decode().strip() for _ in range(4)]
        assert sorted(acquired) == [f"acquired {p}" for p in range(4)]
        survivor = PartitionLeases(nc.jetstream(), group, 4, replica_id="survivor")
        task = asyncio.create_task(survivor.run(stop, *ledger.callbacks("survivor")))  # type: ignore[arg-type]
        await wait_for(lambda: ledger.count("survivor") == 2, 6)  # fair share of a live pair
        released = sorted([(await child.stdout.readline()).decode().strip() for _ in range(2)])
        assert released == sorted(f"released {p}" for p in ledger.owner)
        os.kill(child.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await child.wait()
        await wait_for(lambda: ledger.count("survivor") == 4, 12)
        assert time.monotonic() - killed_at < 10
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        stop.set()
        if task is not None:
            await task
        await nc.close()


async def test_balancing_rounds_create_no_consumers_and_a_member_that_left_stops_counting(
    nats_url: str,
) -> None:
    """Counting members reads the bucket without watchers: many rounds leave the bucket's
    consumer count where it was, and a replica that stopped cleanly gives its share back at
    once (its heartbeat key is deleted, not left to expire)."""
    group = unique("grp")
    nc = await connect_nats(nats_url)
    ledger = Ledger()
    stops = {name: asyncio.Event() for name in ("a", "b")}
    replicas = {
        name: PartitionLeases(nc.jetstream(), group, 4, replica_id=name, renew_s=0.2)
        for name in stops
    }
    tasks = {
        name: asyncio.create_task(replicas[name].run(stops[name], *ledger.callbacks(name)))  # type: ignore[arg-type]
        for name in stops
    }
    try:
        await wait_for(lambda: ledger.count("a") == 2 and ledger.count("b") == 2, 6)
        js = nc.jetstream()
        before = (await js.stream_info("KV_zf_leases")).state.consumer_count
        await asyncio.sleep(2)  # ~10 rounds of each replica
        assert (await js.stream_info("KV_zf_leases")).state.consumer_count <= before

        stops["b"].set()
        await tasks["b"]
        took = await wait_for(lambda: ledger.count("a") == 4, 3)
        assert took < 3  # well before the 6 s a killed replica's heartbeat takes to expire
        assert not ledger.overlaps
    finally:
        for stop in stops.values():
            stop.set()
        await asyncio.gather(*tasks.values())
        await nc.close()


async def test_the_lease_bucket_is_bounded_in_size(nats_url: str) -> None:
    nc = await connect_nats(nats_url)
    try:
        stop = asyncio.Event()
        leases = PartitionLeases(nc.jetstream(), unique("grp"), 2, renew_s=0.2)

        async def noop(p: int) -> None:
            return None

        task = asyncio.create_task(leases.run(stop, noop, noop))
        await wait_for(lambda: len(leases.owned) == 2, 10)
        stop.set()
        await task
        info = await nc.jetstream().stream_info(f"KV_{BUCKET}")
        assert info.config.max_bytes == BUCKET_MAX_BYTES
        assert info.config.num_replicas == 1
    finally:
        await nc.close()
