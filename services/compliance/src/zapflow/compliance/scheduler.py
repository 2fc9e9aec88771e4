"""The background loop: re-decides deferred sends when due, publishes outbox stragglers, prunes.

Durable across restarts: deferred sends live in ``deferred_sends`` and any replica's loop picks
them up (``FOR UPDATE SKIP LOCKED``), so a send deferred before a restart is decided after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from zapflow.compliance import handlers
from zapflow.compliance.ports import Clock, Publisher, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Scheduler:
    store: Store
    publish: Publisher
    clock: Clock
    interval_s: float = 1.0
    sweep_after_s: float = 10.0
    prune_every_s: float = 3600.0
    batch: int = 100

    async def tick(self) -> int:
        """One round; returns how many deferred sends were due."""
        due = await handlers.redecide_due(
            store=self.store, publish=self.publish, clock=self.clock, limit=self.batch
        )
        await handlers.flush_outbox(
            self.store, self.publish, self.clock, older_than_s=self.sweep_after_s
        )
        return due

    async def run(self, stop: asyncio.Event) -> None:
        next_prune = time.monotonic()
        while not stop.is_set():
            due = 0
            try:
                due = await self.tick()
                if time.monotonic() >= next_prune:
                    await self.store.prune(self.clock.now())
                    next_prune = time.monotonic() + self.prune_every_s
            except Exception:  # keep going: the next round retries whatever failed
                logger.exception("scheduler round failed")
            if due < self.batch:  # a full batch means more are waiting: go on at once
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
