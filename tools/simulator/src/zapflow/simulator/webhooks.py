"""Webhook delivery in the background: statuses in order per message, retried like Meta does.

Each accepted send gets a :class:`Chain` of steps (``sent`` → ``delivered`` → ``read`` → reply),
each due at an offset from acceptance. A step is posted only after the previous one was delivered
or given up on, so one message's webhooks always arrive in order; different messages' webhooks
interleave freely (as with the real provider). Non-2xx answers and connection errors are retried
with exponential backoff and jitter, ``max_attempts`` times in all. Submitting never blocks: past
``max_pending`` chains a new one is dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from zapflow.simulator.config import NumberConfig, WebhookConfig
from zapflow.simulator.stats import Stats
from zapflow.simulator.wire import WebhookFormat, WebhookItem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    offset_s: float
    item: WebhookItem


@dataclass
class Chain:
    """The webhooks of one accepted send, still to deliver."""

    number: NumberConfig
    url: str
    format: WebhookFormat
    accepted_at: float  # monotonic
    steps: deque[Step]
    attempt: int = 0


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    chain: Chain = field(compare=False)


class WebhookDispatcher:
    def __init__(
        self,
        config: WebhookConfig,
        client: httpx.AsyncClient,
        *,
        stats: Stats,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self._config = config
        self._client = client
        self._stats = stats
        self._clock = clock
        self._rng = rng
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._ready: asyncio.Queue[Chain] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.pending = 0

    def submit(self, chain: Chain) -> bool:
        """Queue ``chain``; False (and counted as dropped) when too many are pending."""
        if not chain.steps:
            return True
        if self.pending >= self._config.max_pending:
            self._stats.webhooks["dropped"] += len(chain.steps)
            return False
        self.pending += 1
        self._idle.clear()
        self._schedule(chain, chain.accepted_at + chain.steps[0].offset_s)
        return True

    async def wait_idle(self) -> None:
        """Until every submitted chain was delivered or given up on."""
        await self._idle.wait()

    def _schedule(self, chain: Chain, at: float) -> None:
        due = _Due(at, next(self._seq), chain)
        heapq.heappush(self._heap, due)
        if self._heap[0] is due:
            self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; what is still pending then is dropped."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._release_due())
                for _ in range(self._config.concurrency):
                    group.create_task(self._work())
        finally:
            if self.pending:
                logger.info("stopped with %d webhook chains pending", self.pending)

    async def _release_due(self) -> None:
        while True:
            self._wake.clear()
            delay = self._heap[0].at - self._clock() if self._heap else None
            if delay is not None and delay <= 0:
                self._ready.put_nowait(heapq.heappop(self._heap).chain)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _work(self) -> None:
        while True:
            batch = self._take_batch(await self._ready.get())
            delivered = await self._deliver(batch)
            for chain in batch:
                self._after(chain, delivered)

    def _take_batch(self, first: Chain) -> list[Chain]:
        batch = [first]
        if not first.format.batchable:
            return batch
        others: list[Chain] = []
        while len(batch) < self._config.batch_max and not self._ready.empty():
            chain = self._ready.get_nowait()
            (batch if chain.url == first.url else others).append(chain)
        for chain in others:
            self._ready.put_nowait(chain)
        return batch

    async def _deliver(self, batch: list[Chain]) -> bool:
        first = batch[0]
        body, headers = first.format.encode(first.number, [c.steps[0].item for c in batch])
        try:
            response = await self._client.post(
                first.url, content=body, headers=headers, timeout=self._config.timeout_s
            )
        except httpx.HTTPError as exc:
            logger.debug("webhook post failed: %s", type(exc).__name__)
            self._stats.webhooks["connection_errors"] += 1
            return False
        if 200 <= response.status_code < 300:
            self._stats.webhooks["posts"] += 1
            self._stats.webhooks["delivered"] += len(batch)
            return True
        logger.debug("webhook refused with %d", response.status_code)
        self._stats.webhooks[f"http_{response.status_code}"] += 1
        return False

    def _after(self, chain: Chain, delivered: bool) -> None:
        if not delivered:
            chain.attempt += 1
            if chain.attempt < self._config.max_attempts:
                self._stats.webhooks["retries"] += 1
                self._schedule(chain, self._clock() + self._backoff(chain.attempt))
                return
            self._stats.webhooks["abandoned"] += 1
        chain.attempt = 0
        chain.steps.popleft()
        if not chain.steps:
            self.pending -= 1
            if not self.pending:
                self._idle.set()
            return
        due = max(self._clock(), chain.accepted_at + chain.steps[0].offset_s)
        self._schedule(chain, due)

    def _backoff(self, attempt: int) -> float:
        config = self._config
        growth: float = 2.0 ** (attempt - 1)
        ceiling = min(config.max_backoff_ms, config.initial_backoff_ms * growth)
        return ceiling * self._rng.uniform(0.5, 1.0) / 1000
