"""Per-channel memory budgets, and the park for what a channel holds beyond its budget.

A partition worker holds every message it fetched until it is settled, and the partition's
consumer lets it hold at most ``max_ack_pending``. Without a bound per channel, one channel that
cannot send (a pace of 0.001/s, a provider answering 429 for ever, a reached daily cap) would
fill that with its backlog and stop every channel of the partition.

So each channel may hold in memory only its **budget**: ``horizon_s`` seconds of its current pace
(the AIMD-lowered rate counts), at least ``min_messages``, at most ``max_messages``. A message of a
channel over budget — and every later message of that channel while any is parked, so order
holds — is **parked**: inserted, with its stream sequence, subject, headers and payload, into
``parked_sends`` (the sender's PostgreSQL schema), and only then acknowledged on JetStream.
As the channel frees up (its in-memory count falls a quarter below budget) the next parked
messages are **fed** back into the lanes in stream order; a fed message is settled by deleting
its row (after its dead-letter record, if it is given up). The partition keeps fetching, so the
other channels keep their pace.

Order: lanes order by stream sequence, and a message is parked only after every older message of
its channel was either parked or taken into memory. A new owner first counts what is parked in
its partition, and feeds a parked message only once it has fetched past it (or found the stream
empty): a message the previous owner still held in memory when it died is older than what it
parked and comes back from JetStream, so it must be in its lane first.

Exactly once: rows are unique by message id (a redelivered message that was parked before
adds nothing); a fed message is worked through its attempt record like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from zapflow.sender import metrics
from zapflow.sender.ports import ParkedSend, ParkStore

logger = logging.getLogger(__name__)

ChannelKey = tuple[str, str]
EVERYTHING: Final = 2**62
CHECK_EVERY_S: Final = 1.0
"""The feeder looks at every parked channel at least this often (after errors, a new pace)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """How many messages a channel may hold in memory: ``horizon_s`` seconds of its pace."""

    horizon_s: float = 10.0
    min_messages: int = 16
    max_messages: int = 250

    def of(self, rate_per_s: float | None) -> int:
        if rate_per_s is None:
            return self.min_messages
        wanted = math.ceil(rate_per_s * self.horizon_s)
        return max(self.min_messages, min(self.max_messages, wanted))


@dataclass
class _Channel:
    in_memory: int = 0  # the channel's messages in lanes (from the stream or fed from the park)
    parked: int = 0  # rows known to wait in the park (not fed yet)
    parking: int = 0  # routed to the park, insert not committed yet
    fed_through: int = 0  # stream sequence of the last row fed (rows after it wait)
    check: bool = False  # the count may be off: look in the park before leaving parking mode
    configured: float | None = None  # the channel's configured rate (before its pacer exists)


class Parking:
    """One partition worker's budgets and park; the worker routes, parks, feeds and settles."""

    def __init__(
        self,
        store: ParkStore,
        partition: int,
        budget: Budget,
        rate_of: Callable[[str, str], float | None],
    ) -> None:
        self._store = store
        self._partition = partition
        self._budget = budget
        self._rate_of = rate_of
        self._channels: dict[ChannelKey, _Channel] = {}
        self._fetched_through = 0
        self._loaded_through = 0  # the last sequence earlier owners parked
        self._caught_up = False
        self._wake = asyncio.Event()

    def budget(self, key: ChannelKey) -> int:
        channel = self._channels.get(key)
        configured = channel.configured if channel is not None else None
        return self._budget.of(self._rate_of(*key) or configured)

    def knows(self, key: ChannelKey) -> bool:
        channel = self._channels.get(key)
        return channel is not None and channel.configured is not None

    def configured(self, key: ChannelKey, rate_per_s: float) -> None:
        """The channel's configured pace (0: unknown), for its budget until its pacer reports
        the current one (which AIMD may have lowered)."""
        self._channel(key).configured = rate_per_s

    async def load(self) -> None:
        """What earlier owners parked in this partition; before the first fetch."""
        for key, backlog in (await self._store.backlog(self._partition)).items():
            channel = self._channel(key)
            channel.parked, channel.fed_through = backlog.parked, backlog.first_seq - 1
            channel.check = True
            self._loaded_through = max(self._loaded_through, backlog.last_seq)
            self._report(key)
        self._wake.set()

    # -- the fetch side -----------------------------------------------------------------------
    def fetched(self, seq: int) -> None:
        """Messages up to stream sequence ``seq`` were delivered to this worker."""
        if seq > self._fetched_through:
            self._fetched_through = seq
            self._wake.set()

    def caught_up(self) -> None:
        """A fetch found nothing: every message stored so far was delivered."""
        if not self._caught_up:
            self._caught_up = True
            self._wake.set()

    def route(self, key: ChannelKey, seq: int) -> bool:
        """True: park this message (its channel is over budget, or has older ones parked);
        False: it goes to its lane (counted as in memory). A message older than every message
        still parked (one the previous owner held in memory when it died) goes to its lane:
        it must be sent before them, and feeding waits until it was fetched."""
        channel = self._channel(key)
        if seq <= channel.fed_through:
            channel.in_memory += 1
            return False
        if channel.parked or channel.parking or channel.check:
            channel.parking += 1
            return True
        if channel.in_memory >= self.budget(key):
            channel.parking += 1
            return True
        channel.in_memory += 1
        return False

    async def park(self, sends: Sequence[ParkedSend]) -> None:
        """Insert the routed messages; returns once committed (then ack them). Raises on a
        database error: the caller retries (the messages are still held)."""
        await self._store.park(sends)
        for send in sends:
            channel = self._channel((send.tenant_id, send.channel_id))
            channel.parking -= 1
            channel.parked += 1
            channel.check = True  # a row that existed already (redelivery) counts twice
        metrics.PARKED_TOTAL.inc(len(sends))
        for key in {(send.tenant_id, send.channel_id) for send in sends}:
            self._report(key)
        self._wake.set()

    # -- the lane side ------------------------------------------------------------------------
    def left(self, key: ChannelKey) -> None:
        """One of the channel's messages in memory was settled."""
        channel = self._channels.get(key)
        if channel is not None:
            channel.in_memory -= 1
            if channel.parked or channel.check:
                self._wake.set()

    async def feed(self, take: Callable[[list[ParkedSend]], Awaitable[None]]) -> None:
        """Feed parked messages to ``take`` (the lanes) as their channels free up; forever."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), CHECK_EVERY_S)
            self._wake.clear()
            for key in [k for k, c in self._channels.items() if c.parked or c.check]:
                try:
                    await self._feed_one(key, take)
                except Exception:  # the database: the next round tries again
                    logger.warning("feeding parked sends failed", exc_info=True)

    async def _feed_one(
        self, key: ChannelKey, take: Callable[[list[ParkedSend]], Awaitable[None]]
    ) -> None:
        channel = self._channels[key]
        budget = self.budget(key)
        room = budget - channel.in_memory
        if room <= 0 or (channel.in_memory and room < max(1, budget // 4)):
            return
        complete = self._caught_up or self._fetched_through >= self._loaded_through
        through = EVERYTHING if complete else self._fetched_through
        rows = await self._store.next(
            *key, after_seq=channel.fed_through, through_seq=through, limit=room
        )
        if rows:
            channel.fed_through = rows[-1].seq
            channel.parked = max(0, channel.parked - len(rows))
            channel.check = channel.check or not channel.parked
            channel.in_memory += len(rows)
            await take(rows)
        if complete and len(rows) < room and not channel.parking:
            channel.parked, channel.check = 0, False  # verified: nothing else waits
        self._report(key)

    # -- bookkeeping --------------------------------------------------------------------------
    def _channel(self, key: ChannelKey) -> _Channel:
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = _Channel()
        return channel

    def _report(self, key: ChannelKey) -> None:
        channel = self._channels[key]
        metrics.PARKED.labels(*key).set(channel.parked + channel.parking)

    def close(self) -> None:
        for key in self._channels:
            with contextlib.suppress(KeyError):
                metrics.PARKED.remove(*key)

    def parked(self, key: ChannelKey) -> int:
        """Messages of the channel waiting in the park (for tests and status)."""
        channel = self._channels.get(key)
        return 0 if channel is None else channel.parked + channel.parking
