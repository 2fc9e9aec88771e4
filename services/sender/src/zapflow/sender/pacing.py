"""The asyncio side of a channel's pace: waiting lanes get send slots as the pace allows.

One :class:`ChannelPacer` per channel of an owned partition. Lanes call ``acquire``; a single
task hands out slots when the pure :class:`~zapflow.sender.domain.PaceLimiter` allows, highest
priority first (operator replies before campaign bulk), then first come. A lane records its
attempt, then ``commit``s the slot right before the call: the spacing is accounted when calls
start, so a slow database write between grant and call never bunches calls up at the provider.
Because slots are handed out one by one (not reserved ahead), a lowered AIMD factor or new
settings apply to every lane still waiting.

:class:`Pacers` builds them: a new pacer restores today's send count and the AIMD factor from
PostgreSQL, so the daily cap and a lowered pace survive restarts and hand-overs, and starts with
an empty bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zapflow.contracts.channels.v1 import ChannelSettings
from zapflow.sender import metrics
from zapflow.sender.domain import AimdConfig, PaceConfig, PaceLimiter
from zapflow.sender.ports import AttemptStore

logger = logging.getLogger(__name__)

MAX_SLEEP_S = 1.0  # re-check at least this often (new settings, stop)
SAVE_EVERY_S = 1.0  # persist a changed AIMD factor at most this often


def pace_config(settings: ChannelSettings, headroom: float) -> PaceConfig:
    pace = settings.pace
    return PaceConfig(
        rate=pace.rate_per_second,
        burst=pace.burst,
        jitter_min_s=pace.jitter_min_s,
        jitter_max_s=pace.jitter_max_s,
        pause_after_sends=pace.pause_after_sends,
        pause_min_s=pace.pause_min_s,
        pause_max_s=pace.pause_max_s,
        daily_cap=pace.daily_cap,
        timezone=settings.policy.timezone,
        headroom=headroom,
    )


@dataclass(order=True)
class _Waiter:
    priority: int
    order: int
    future: asyncio.Future[Slot] = field(compare=False)
    counts_toward_cap: bool = field(compare=False)


class Slot:
    """A reserved send slot: ``commit()`` right before the provider call, else ``release()``."""

    def __init__(self, pacer: ChannelPacer) -> None:
        self._pacer: ChannelPacer | None = pacer

    async def commit(self) -> None:
        """Wait until the call may start by the pace (usually at once), and account it."""
        pacer = self._pacer
        if pacer is None:
            raise RuntimeError("slot already used")
        await pacer.commit()
        self._pacer = None

    def release(self) -> None:
        """Give the slot back unused; harmless after ``commit``."""
        pacer, self._pacer = self._pacer, None
        if pacer is not None:
            pacer.release()


class ChannelPacer:
    """The ``Pacer`` port of one channel.

    Slots are *reserved* by ``acquire`` (priority order, the daily cap counted there) on the
    schedule the reserved-but-unstarted calls leave, and *committed* right before the provider
    call, where the spacing is accounted: the pace holds for the moments calls actually start,
    however long recording the attempt took in between, and a lane rarely waits at ``commit``
    (where its attempt is already recorded as ``sending``). At most ``max_reserved`` slots are
    open at a time.
    """

    def __init__(
        self,
        limiter: PaceLimiter,
        *,
        on_factor: Callable[[float], None] = lambda _: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter = limiter
        self._on_factor = on_factor
        self._clock = clock
        self._waiters: list[_Waiter] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reserved = 0
        self._saved_factor = limiter.factor

    @property
    def max_reserved(self) -> int:
        """Open slots: the burst, or enough to cover 50 ms of attempt recording at the rate."""
        config = self.limiter.config
        return max(config.burst, math.ceil(config.rate * 0.05))

    async def acquire(self, *, priority: int, counts_toward_cap: bool) -> Slot:
        future: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._waiters, _Waiter(priority, next(self._order), future, counts_toward_cap)
        )
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._grant_loop(), name="pacer")
        self._wake.set()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.result().release()  # granted as we were cancelled
            raise

    async def commit(self) -> None:
        while True:
            now = self._clock()
            wait = self.limiter.next_at(now) - now
            if wait <= 0:
                break
            await asyncio.sleep(min(wait, MAX_SLEEP_S))
        self.limiter.take(now)
        self.release()

    def release(self) -> None:
        self._reserved -= 1
        self._wake.set()

    def rate_limited(self, retry_after: float | None) -> None:
        if self.limiter.rate_limited(self._clock(), retry_after):
            logger.warning("channel pace lowered", extra={"factor": self.limiter.factor})
        self._report_factor()

    def reconfigure(self, config: PaceConfig) -> None:
        if config != self.limiter.config:
            self.limiter.reconfigure(config, self._clock())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for waiter in self._waiters:
            waiter.future.cancel()

    async def _grant_loop(self) -> None:
        while True:
            while self._waiters and self._waiters[0].future.done():
                heapq.heappop(self._waiters)  # cancelled lanes
            if not self._waiters or self._reserved >= self.max_reserved:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = self._clock()
            capped = self.limiter.capped_until(now)
            due = self.limiter.next_at(now, pending=self._reserved)
            wait = (capped if capped is not None else due) - now
            if wait > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(wait, MAX_SLEEP_S))
                continue
            waiter = heapq.heappop(self._waiters)
            if waiter.counts_toward_cap:
                self.limiter.count(now)
            self._reserved += 1
            waiter.future.set_result(Slot(self))
            self._report_factor()

    def _report_factor(self) -> None:
        factor = self.limiter.factor
        if factor != self._saved_factor:
            self._saved_factor = factor
            self._on_factor(factor)


class Pacers:
    """The pacers of one partition worker, created on first use of each channel."""

    def __init__(
        self,
        store: AttemptStore,
        *,
        aimd: AimdConfig,
        headroom: float,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._aimd = aimd
        self._headroom = headroom
        self._rng = rng or random.Random()
        self._clock = clock
        self._pacers: dict[tuple[str, str], ChannelPacer] = {}
        self._creating: dict[tuple[str, str], asyncio.Future[ChannelPacer]] = {}
        self._saves: set[asyncio.Task[None]] = set()
        self._last_save: dict[tuple[str, str], float] = {}

    async def pacer_for(
        self, tenant_id: str, channel_id: str, settings: ChannelSettings
    ) -> ChannelPacer:
        key = (tenant_id, channel_id)
        config = pace_config(settings, self._headroom)
        pacer = self._pacers.get(key)
        if pacer is None:
            pending = self._creating.get(key)
            if pending is None:
                pending = asyncio.ensure_future(self._create(key, config))
                self._creating[key] = pending
                pending.add_done_callback(lambda _: self._creating.pop(key, None))
            pacer = await asyncio.shield(pending)
        pacer.reconfigure(config)
        return pacer

    def rate(self, tenant_id: str, channel_id: str) -> float | None:
        """The channel's current pace in sends per second (AIMD included); None before its
        first send on this worker."""
        pacer = self._pacers.get((tenant_id, channel_id))
        return None if pacer is None else pacer.limiter.effective_rate

    async def close(self) -> None:
        for pacer in self._pacers.values():
            await pacer.close()
        for key in self._pacers:
            with contextlib.suppress(KeyError):
                metrics.PACE_FACTOR.remove(*key)
        if self._saves:
            await asyncio.wait(self._saves, timeout=2)

    async def _create(self, key: tuple[str, str], config: PaceConfig) -> ChannelPacer:
        tenant_id, channel_id = key
        factor = await self._store.pace_factor(tenant_id, channel_id)
        limiter = PaceLimiter(
            config, now=self._clock(), rng=self._rng, aimd=self._aimd, factor=factor or 1.0
        )
        limiter.restore(
            day=limiter.day, count=await self._store.daily_count(tenant_id, channel_id, limiter.day)
        )
        pacer = ChannelPacer(limiter, on_factor=lambda f: self._factor_changed(key, f))
        self._pacers[key] = pacer
        metrics.PACE_FACTOR.labels(*key).set(limiter.factor)
        return pacer

    def _factor_changed(self, key: tuple[str, str], factor: float) -> None:
        metrics.PACE_FACTOR.labels(*key).set(factor)
        now = time.monotonic()
        if now - self._last_save.get(key, 0.0) < SAVE_EVERY_S and factor < 1.0:
            return
        self._last_save[key] = now
        task = asyncio.create_task(self._save(key, factor))
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    async def _save(self, key: tuple[str, str], factor: float) -> None:
        try:
            await self._store.save_pace_factor(*key, factor)
        except Exception:  # losing one save only means a new owner starts a little faster
            logger.warning("pace factor not saved", exc_info=True)
