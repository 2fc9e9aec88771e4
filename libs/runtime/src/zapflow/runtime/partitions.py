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
  when ``ttl - margin`` passed since the last successful one (NATS unreachable). Releasing stops the
  partition's work first and deletes the lease after, so two owners never overlap in time.

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
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

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
        self.owned: dict[int, int] = {}  # partition -> lease revision
        self._renewed_at: dict[int, float] = {}
        self._js = js
        self._kv: KeyValue | None = None

    def _key(self, partition: int) -> str:
        return f"{self.group}.p{partition}"

    async def run(self, stop: asyncio.Event, on_acquired: Callback, on_released: Callback) -> None:
        """Balance ownership until ``stop`` is set, then release everything this replica holds."""
        self._kv = await lease_bucket(self._js, self.ttl_s, self.replicas)
        try:
            while not stop.is_set():
                try:
                    await self._tick(on_acquired, on_released)
                except Exception:  # NATS hiccup: leases are protected by _expire_stale
                    logger.warning("lease round failed", extra={"group": self.group}, exc_info=True)
                await self._expire_stale(on_released)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.renew_s)
        finally:  # stop every partition's work together, then hand the leases back
            await asyncio.gather(*(self._release(p, on_released) for p in sorted(self.owned)))
            if self._kv is not None:
                with contextlib.suppress(Exception):  # a restart must not count a ghost member
                    await self._kv.delete(f"{self.group}.members.{self.replica_id}")

    async def _tick(self, on_acquired: Callback, on_released: Callback) -> None:
        kv = self._kv
        assert kv is not None
        await kv.put(f"{self.group}.members.{self.replica_id}", str(time.time()).encode())
        for partition, revision in list(self.owned.items()):
            try:
                self.owned[partition] = await kv.update(
                    self._key(partition), self.replica_id.encode(), last=revision
                )
                self._renewed_at[partition] = time.monotonic()
            except KeyWrongLastSequenceError:
                logger.warning("lease lost", extra={"group": self.group, "partition": partition})
                await self._drop(partition, on_released)
        share = math.ceil(self.partitions / await self._members(kv))
        for partition in sorted(self.owned, reverse=True)[: max(0, len(self.owned) - share)]:
            await self._release(partition, on_released)
        free = [p for p in range(self.partitions) if p not in self.owned]
        random.shuffle(free)  # replicas starting together do not all race for partition 0
        for partition in free:
            if len(self.owned) >= share:
                break
            try:
                revision = await kv.create(self._key(partition), self.replica_id.encode())
            except KeyWrongLastSequenceError:
                continue  # another replica holds it
            self.owned[partition] = revision
            self._renewed_at[partition] = time.monotonic()
            logger.info("lease acquired", extra={"group": self.group, "partition": partition})
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
        deadline = self.ttl_s - self.renew_s
        now = time.monotonic()
        for partition in [p for p, at in self._renewed_at.items() if now - at > deadline]:
            logger.warning("lease not renewed in time", extra={"partition": partition})
            await self._drop(partition, on_released)

    async def _drop(self, partition: int, on_released: Callback) -> None:
        """Stop working on ``partition`` without touching the lease (it is not ours any more)."""
        self.owned.pop(partition, None)
        self._renewed_at.pop(partition, None)
        await on_released(partition)

    async def _release(self, partition: int, on_released: Callback) -> None:
        """Stop working on ``partition``, then hand the lease back."""
        revision = self.owned.get(partition)
        await self._drop(partition, on_released)
        if revision is not None and self._kv is not None:
            with contextlib.suppress(Exception):  # it expires by itself if this fails
                await self._kv.delete(self._key(partition), last=revision)
        logger.info("lease released", extra={"group": self.group, "partition": partition})
