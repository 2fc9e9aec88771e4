"""This replica's share of the partitions: a lease and a :class:`PartitionWorker` per partition.

``zapflow.runtime.partitions.PartitionLeases`` gives each partition to one replica at a time and
moves it within seconds when its owner dies. Releasing a partition *stops* its worker: its fetch
loop ends before the lease is handed back (a pull request it sent afterwards could take messages
from the next owner), no new provider call starts and waiting lanes are cancelled. Calls still in
flight finish in the background and record their outcome — a new owner waits for that
(``handlers`` plan ``WAIT_IN_FLIGHT``) — so a slow provider never delays the renewal of the other
leases. On shutdown the runner waits for them, bounded by ``grace_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from nats.js import JetStreamContext

from zapflow.contracts.streams import ConsumerSpec
from zapflow.runtime.partitions import PartitionLeases
from zapflow.sender import metrics
from zapflow.sender.worker import PartitionWorker

logger = logging.getLogger(__name__)


class PartitionRunner:
    def __init__(
        self,
        js: JetStreamContext,
        specs: Sequence[ConsumerSpec],
        make_worker: Callable[[ConsumerSpec], PartitionWorker],
        *,
        ttl_s: float = 6.0,
        renew_s: float = 1.5,
        grace_s: float = 10.0,
        replicas: int = 1,
    ) -> None:
        self._specs = {spec.partition: spec for spec in specs if spec.partition is not None}
        if sorted(self._specs) != list(range(len(specs))):
            raise ValueError("partitioned consumers must be numbered 0..N-1")
        group = specs[0].durable.rsplit("-p", 1)[0]
        self.leases = PartitionLeases(
            js, group, len(specs), ttl_s=ttl_s, renew_s=renew_s, replicas=replicas
        )
        self._make_worker = make_worker
        self._grace_s = grace_s
        self.workers: dict[int, PartitionWorker] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold leases until ``stop``; then release them and let calls in flight finish."""
        try:
            await self.leases.run(stop, self._acquired, self._released)
        finally:
            pending = self._stopping | set(self._tasks.values())
            if pending:
                _, late = await asyncio.wait(pending, timeout=self._grace_s)
                for task in late:
                    logger.error("partition worker did not stop in time")
                    task.cancel()

    async def _acquired(self, partition: int) -> None:
        worker = self._make_worker(self._specs[partition])
        self.workers[partition] = worker
        self._tasks[partition] = asyncio.create_task(
            self._supervise(partition, worker), name=worker.spec.durable
        )
        metrics.PARTITIONS.set(len(self.workers))

    async def _released(self, partition: int) -> None:
        worker = self.workers.pop(partition)
        task = self._tasks.pop(partition)
        worker.stop()
        await worker.fetching_stopped()  # before the lease goes: see PartitionWorker.stop
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        metrics.PARTITIONS.set(len(self.workers))

    async def _supervise(self, partition: int, worker: PartitionWorker) -> None:
        """Run the worker; after a crash, a fresh one while the partition is still ours."""
        while True:
            try:
                await worker.run()
                return
            except Exception:
                logger.exception("partition worker crashed", extra={"partition": partition})
            await asyncio.sleep(1.0)
            if self.workers.get(partition) is not worker:
                return  # released meanwhile
            worker = self._make_worker(self._specs[partition])
            self.workers[partition] = worker
