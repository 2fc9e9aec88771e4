"""Exclusive ownership of partitions across replicas, with leases in a JetStream KV bucket.

Send paths are partitioned by channel (``zapflow.contracts.subjects.partition_transform``); each
partition must be consumed by **one** replica at a time so order per channel holds, and must move
to a live replica within seconds when its owner dies. Every replica of a group runs
:class:`PartitionLeases`:

* it heartbeats ``<group>.members.<replica>`` and counts live members to aim at a fair share,
  ``ceil(partitions / members)``; a replica holding more releases the surplus, one holding fewer
  tries to take free partitions;
* a partition is owned through the key ``<group>.p<N>``, taken with ``create`` (fails if another
  replica holds it) and renewed with ``update(last=revision)`` every ``renew_s``; the bucket's
  ``ttl`` removes the key of a replica that stopped renewing (killed, partitioned away);
* a replica stops working on a partition **before** its lease can expire: when a renewal fails, or
  when ``ttl - renew_s`` passed since the last successful one was *sent* (NATS unreachable, the
  process paused). Releasing stops the partition's work first and deletes the lease after, so
  two owners never overlap in time.

**Fencing.** The lease loop is not the only guard: a replica whose event loop was blocked, or
that was stopped (SIGSTOP, a VM pause) past the TTL, must not fetch once more or call a provider
when it wakes, before its lease loop noticed. Each ownership is an :class:`Ownership` — the
partition and its *fencing token*, the lease's revision when it was taken (a later owner's is
always higher). ``Ownership.held()`` is a clock comparison, cheap enough to call before every
fetch, every message and every provider call: true only while the lease is this replica's, from
this very taking, and its last successful renewal was sent less than ``ttl - renew_s`` ago. Once
false it stays false: a stale lease is never renewed, it is released (work stopped first) and
may be taken again under a new token.

**Supervision.** :class:`PartitionSupervisor` runs one :class:`PartitionWork` per owned
partition (the runtime's consumer, or a service's own worker such as the sender's). A work that
crashes is started again after a backoff while its ownership holds; after ``restarts`` crashes in
a row its lease is given up (and not taken again by this replica for ``cooldown_s``), so a lease
is never renewed for a consumer that is dead.

With the defaults (ttl 6 s, renew 1.5 s) a dead replica's partitions are taken over in < 8 s.
The bucket takes the streams' replicas (``ZF_STREAM_REPLICAS``): on a NATS cluster, an R1 bucket
would stop every partition of every group while its one server is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from zapflow.contracts.streams import ConsumerSpec
from zapflow.runtime import metrics

logger = logging.getLogger(__name__)

BUCKET = "zf_leases"
Callback = Callable[[int], Awaitable[None]]


BUCKET_MAX_BYTES = 16 * 1024 * 1024
"""Leases and heartbeats: a few hundred small keys. Writes past this size are refused."""


async def lease_bucket(js: JetStreamContext, ttl_s: float, replicas: int = 1) -> KeyValue:
    """The lease bucket, created with ``replicas`` (or moved to them: the stream is updated),
    bounded in size, read with direct gets."""
    try:
        kv = await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=BUCKET,
                history=1,
                ttl=ttl_s,
                max_bytes=BUCKET_MAX_BYTES,
                storage=StorageType.FILE,
                replicas=replicas,
                description="Partition leases and replica heartbeats.",
                direct=True,
            )
        )
    info = await js.stream_info(f"KV_{BUCKET}")
    config = info.config
    stale = (config.num_replicas, config.max_bytes, config.allow_direct)
    if stale != (replicas, BUCKET_MAX_BYTES, True):
        config.num_replicas = replicas
        config.max_bytes = BUCKET_MAX_BYTES
        config.allow_direct = True  # keys are read with direct gets (what identities may do)
        await js.update_stream(config)
        logger.info("lease bucket updated", extra={"replicas": replicas})
        kv = await js.key_value(BUCKET)
    return kv


@dataclass(frozen=True, slots=True)
class Ownership:
    """One period of this replica owning one partition: what a partition's work checks."""

    leases: PartitionLeases
    partition: int
    token: int
    """The lease's revision when it was taken: the fencing token of this ownership."""

    def held(self) -> bool:
        """True while this ownership lasts (see the module docstring); never true again after."""
        return self.leases.holds(self.partition, self.token)


class PartitionLeases:
    """Takes, renews and releases this replica's share of a group's partitions."""

    def __init__(
        self,
        js: JetStreamContext,
        group: str,
        partitions: int,
        *,
        ttl_s: float = 6.0,
        renew_s: float = 1.5,
        replica_id: str | None = None,
        replicas: int = 1,
    ) -> None:
        self.group = group
        self.replicas = replicas
        self.partitions = partitions
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.owned: dict[int, int] = {}  # partition -> lease revision (the latest renewal's)
        self._tokens: dict[int, int] = {}  # partition -> revision when taken (fencing token)
        self._renewed_at: dict[int, float] = {}  # when the last successful renewal was sent
        self._given_up: set[int] = set()
        self._cooldown: dict[int, float] = {}  # partition -> not taken again before
        self._js = js
        self._kv: KeyValue | None = None

    @property
    def valid_s(self) -> float:
        """How long after sending a successful renewal the lease still counts as ours."""
        return self.ttl_s - self.renew_s

    def holds(self, partition: int, token: int | None = None) -> bool:
        """Whether ``partition`` is ours now (and, with ``token``, still from that taking)."""
        if partition not in self.owned or (token is not None and self._tokens[partition] != token):
            return False
        return time.monotonic() - self._renewed_at[partition] < self.valid_s

    def ownership(self, partition: int) -> Ownership:
        """The current ownership of ``partition`` (it must be owned)."""
        return Ownership(self, partition, self._tokens[partition])

    def give_up(self, partition: int, cooldown_s: float) -> None:
        """Release ``partition`` at the next round instead of renewing it, and take it again
        only after ``cooldown_s`` (its work keeps failing here: let another replica try)."""
        if partition in self.owned:
            self._given_up.add(partition)
            self._cooldown[partition] = time.monotonic() + cooldown_s

    def _key(self, partition: int) -> str:
        return f"{self.group}.p{partition}"

    async def run(self, stop: asyncio.Event, on_acquired: Callback, on_released: Callback) -> None:
        """Balance ownership until ``stop`` is set, then release everything this replica holds."""
        self._kv = await lease_bucket(self._js, self.ttl_s, self.replicas)
        try:
            while not stop.is_set():
                # first: a lease that went stale (NATS away, this process paused) is over,
                # whatever a renewal would answer now — its work may have seen it stale
                await self._expire_stale(on_released)
                try:
                    await self._tick(on_acquired, on_released)
                except Exception:  # NATS hiccup: leases are protected by _expire_stale
                    logger.warning("lease round failed", extra={"group": self.group}, exc_info=True)
                metrics.PARTITIONS_OWNED.labels(self.group).set(len(self.owned))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.renew_s)
        finally:  # stop every partition's work together, then hand the leases back
            await asyncio.gather(*(self._release(p, on_released) for p in sorted(self.owned)))
            metrics.PARTITIONS_OWNED.labels(self.group).set(0)
            if self._kv is not None:
                with contextlib.suppress(Exception):  # a restart must not count a ghost member
                    await self._kv.delete(f"{self.group}.members.{self.replica_id}")

    async def _tick(self, on_acquired: Callback, on_released: Callback) -> None:
        kv = self._kv
        assert kv is not None
        await kv.put(f"{self.group}.members.{self.replica_id}", str(time.time()).encode())
        for partition in sorted(self._given_up):
            self._given_up.discard(partition)
            logger.warning("lease given up", extra={"group": self.group, "partition": partition})
            await self._release(partition, on_released)
        for partition, revision in list(self.owned.items()):
            if not self.holds(partition):  # went stale during this round: never renewed
                await self._release(partition, on_released)
                continue
            sent = time.monotonic()
            try:
                self.owned[partition] = await kv.update(
                    self._key(partition), self.replica_id.encode(), last=revision
                )
                self._renewed_at[partition] = sent
            except KeyWrongLastSequenceError:
                logger.warning("lease lost", extra={"group": self.group, "partition": partition})
                await self._drop(partition, on_released)
        share = math.ceil(self.partitions / await self._members(kv))
        for partition in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]:
            await self._release(partition, on_released)
        now = time.monotonic()
        free = [
            p
            for p in range(self.partitions)
            if p not in self.owned and self._cooldown.get(p, 0.0) <= now
        ]
        random.shuffle(free)  # replicas starting together do not all race for partition 0
        for partition in free:
            if len(self.owned) >= share:
                break
            sent = time.monotonic()
            try:
                revision = await kv.create(self._key(partition), self.replica_id.encode())
            except KeyWrongLastSequenceError:
                continue  # another replica holds it
            self.owned[partition] = self._tokens[partition] = revision
            self._renewed_at[partition] = sent
            logger.info(
                "lease acquired",
                extra={"group": self.group, "partition": partition, "token": revision},
            )
            await on_acquired(partition)

    async def _members(self, kv: KeyValue) -> int:
        """Live members of the group: heartbeat keys whose last entry is not a delete.

        The keys come from the stream's per-subject counts and each is read with a direct get,
        so counting creates no consumer (``kv.keys()`` would create a watcher every round, and
        the server keeps each one until its inactivity threshold).
        """
        prefix = f"{self.group}.members."
        info = await self._js.stream_info(f"KV_{BUCKET}", subjects_filter=f"$KV.{BUCKET}.{prefix}>")
        live = 0
        for subject in info.state.subjects or {}:
            key = subject.removeprefix(f"$KV.{BUCKET}.")
            try:
                entry = await kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):  # left, or expired meanwhile
                continue
            live += entry.value is not None  # None: a per-key TTL expiry marker
        return max(1, live)

    async def _expire_stale(self, on_released: Callback) -> None:
        for partition in [p for p in self.owned if not self.holds(p)]:
            logger.warning(
                "lease not renewed in time", extra={"group": self.group, "partition": partition}
            )
            await self._release(partition, on_released)

    async def _drop(self, partition: int, on_released: Callback) -> None:
        """Stop working on ``partition`` without touching the lease (it is not ours any more)."""
        if self.owned.pop(partition, None) is None:
            return
        self._tokens.pop(partition, None)
        self._renewed_at.pop(partition, None)
        await on_released(partition)

    async def _release(self, partition: int, on_released: Callback) -> None:
        """Stop working on ``partition``, then hand the lease back (if nobody took it since)."""
        revision = self.owned.get(partition)
        if revision is None:
            return
        await self._drop(partition, on_released)
        if self._kv is not None:
            with contextlib.suppress(Exception):  # it expires by itself if this fails
                await self._kv.delete(self._key(partition), last=revision)
        logger.info("lease released", extra={"group": self.group, "partition": partition})


# -- the work on owned partitions ----------------------------------------------------------------


class PartitionWork(Protocol):
    """What runs on one owned partition (the runtime's consumer, the sender's worker)."""

    async def run(self) -> None:
        """Work until :meth:`stop` (or until its ``Ownership`` no longer holds); raises when it
        crashed."""
        ...

    def stop(self) -> None:
        """Fetch nothing more and start nothing new; returns at once."""
        ...

    async def fetching_stopped(self) -> None:
        """After :meth:`stop`: return once no fetch request can be sent any more (before the
        lease goes, a pull request would take messages from the next owner)."""
        ...


MakeWork = Callable[[ConsumerSpec, Ownership], PartitionWork]

RESTARTS: Final = 3
"""Crashes in a row a partition's work is restarted after; one more and its lease is given up."""


class PartitionSupervisor:
    """This replica's share of a partitioned stream: a lease and a supervised work per owned
    partition (module docstring). ``run(stop)`` until ``stop``; then everything is released and
    the works get ``grace_s`` to finish what they started."""

    def __init__(
        self,
        js: JetStreamContext,
        specs: Sequence[ConsumerSpec],
        make_work: MakeWork,
        *,
        ttl_s: float = 6.0,
        renew_s: float = 1.5,
        grace_s: float = 10.0,
        restarts: int = RESTARTS,
        restart_backoff_s: float = 1.0,
        cooldown_s: float = 30.0,
        replica_id: str | None = None,
        replicas: int = 1,
    ) -> None:
        self.specs = {spec.partition: spec for spec in specs if spec.partition is not None}
        if sorted(self.specs) != list(range(len(specs))):
            raise ValueError("partitioned consumers must be numbered 0..N-1")
        group = specs[0].durable.rsplit("-p", 1)[0]
        self.leases = PartitionLeases(
            js,
            group,
            len(specs),
            ttl_s=ttl_s,
            renew_s=renew_s,
            replica_id=replica_id,
            replicas=replicas,
        )
        self.works: dict[int, PartitionWork] = {}
        self._make_work = make_work
        self._grace_s = grace_s
        self._restarts = restarts
        self._restart_backoff_s = restart_backoff_s
        self._cooldown_s = cooldown_s
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold leases until ``stop``; then release them and let work in flight finish."""
        try:
            await self.leases.run(stop, self._acquired, self._released)
        finally:
            pending = self._stopping | set(self._tasks.values())
            if pending:
                _, late = await asyncio.wait(pending, timeout=self._grace_s)
                for task in late:
                    logger.error("partition work did not stop in time")
                    task.cancel()

    async def _acquired(self, partition: int) -> None:
        ownership = self.leases.ownership(partition)
        work = self._make_work(self.specs[partition], ownership)
        self.works[partition] = work
        self._tasks[partition] = asyncio.create_task(
            self._supervise(ownership, work), name=self.specs[partition].durable
        )

    async def _released(self, partition: int) -> None:
        work = self.works.pop(partition)
        task = self._tasks.pop(partition)
        work.stop()
        try:  # before the lease goes: see PartitionWork.fetching_stopped
            await asyncio.wait_for(work.fetching_stopped(), self._grace_s)
        except TimeoutError:
            logger.error("partition work did not stop fetching in time", extra={"p": partition})
        if not task.done():
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def _supervise(self, ownership: Ownership, work: PartitionWork) -> None:
        """Run the work; after a crash, a fresh one while the ownership holds; after
        ``restarts`` crashes in a row, give the lease up."""
        partition = ownership.partition
        crashes = 0
        while True:
            started = time.monotonic()
            try:
                await work.run()
                return  # stopped, or it saw its ownership end (the lease loop releases it)
            except Exception:
                logger.exception("partition work crashed", extra={"partition": partition})
            crashes = 1 if time.monotonic() - started > 60.0 else crashes + 1
            if crashes > self._restarts:
                logger.error("partition work keeps crashing", extra={"partition": partition})
                self.leases.give_up(partition, self._cooldown_s)
                return
            await asyncio.sleep(self._restart_backoff_s * 2 ** (crashes - 1))
            if self.works.get(partition) is not work or not ownership.held():
                return  # released meanwhile
            work = self._make_work(self.specs[partition], ownership)
            self.works[partition] = work
