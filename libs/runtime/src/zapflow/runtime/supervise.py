"""Supervised background tasks: one way to run a loop that must not die quietly.

Every long-running task of a service — its consumers, its partition leases, and the loops a
service starts itself (outbox relays, listeners, schedulers, cache maintenance, purges) — runs
under a :class:`Supervisor` (``Service.supervise``). A task that crashes, or returns before it was
asked to stop, is logged and started again after a backoff (1 s doubling to 30 s, reset once it
ran a minute), and is reported *down* meanwhile: ``/readyz`` answers 503 naming it
(``task:<name>``) until it runs again. So a crash restarts the task, and a task that keeps
crashing keeps the replica out of rotation.

``run(stop)`` is the task's contract: work until ``stop`` is set, then return promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from zapflow.runtime import metrics

logger = logging.getLogger(__name__)

Factory = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

STABLE_AFTER_S: Final = 60.0


class Supervisor:
    """Runs named tasks until ``stop`` is set; see the module docstring."""

    def __init__(
        self,
        stop: asyncio.Event | None = None,
        *,
        backoff_s: float = 1.0,
        backoff_cap_s: float = 30.0,
    ) -> None:
        self.stop_event = stop or asyncio.Event()
        self._backoff_s = backoff_s
        self._cap_s = backoff_cap_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._down: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    @property
    def tasks(self) -> tuple[asyncio.Task[None], ...]:
        return tuple(self._tasks.values())

    def is_up(self, name: str) -> bool:
        return name in self._tasks and name not in self._down

    def start(self, name: str, run: Factory) -> None:
        """Run ``run(stop)`` now, under supervision; ``name`` must be unique."""
        if name in self._tasks:
            raise ValueError(f"task {name!r} is already supervised")
        self._tasks[name] = asyncio.create_task(self._keep(name, run), name=name)

    async def stop(self, grace_s: float) -> None:
        """Set ``stop``, wait up to ``grace_s`` for the tasks to return, cancel the rest."""
        self.stop_event.set()
        await self.wait(grace_s)

    async def wait(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` for the tasks (``stop`` already set), then cancel the rest."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace_s)
        for task in late:
            logger.error("task did not stop in time", extra={"task": task.get_name()})
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)

    async def _keep(self, name: str, run: Factory) -> None:
        stop = self.stop_event
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await run(stop)
            except Exception:
                logger.exception("task crashed, restarting", extra={"task": name})
            else:
                if stop.is_set():
                    return
                logger.error("task ended before it was stopped, restarting", extra={"task": name})
            self._down.add(name)
            metrics.TASK_RESTARTS.labels(name).inc()
            failures = 1 if time.monotonic() - started > STABLE_AFTER_S else failures + 1
            delay = min(self._cap_s, self._backoff_s * 2 ** (failures - 1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            self._down.discard(name)
