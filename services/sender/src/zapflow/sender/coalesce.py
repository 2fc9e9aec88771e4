"""Coalesce concurrent writes into one statement, without a timer.

:class:`Coalescer` runs a batch function over the items submitted while earlier batches are
still running: at low load every item goes alone at once (no added latency), under load items
queue while ``max_in_flight`` batches are in the database and leave together in the next one. A
caller's ``submit`` returns only once *its* batch finished, with its own result (or the batch's
exception), so "written before the call" holds per item exactly as with one statement each.

One key appears at most once per batch: a second submission of a key already waiting goes in a
later batch, so a batch never touches a row twice (an ``UPDATE … FROM unnest`` or an ``INSERT …
ON CONFLICT`` would otherwise report one row for two callers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
A = TypeVar("A")
R = TypeVar("R")

BatchFn = Callable[[Sequence[tuple[K, A]]], Awaitable[dict[K, R]]]


class Coalescer(Generic[K, A, R]):
    """``await submit(key, arg)`` → ``batch([(key, arg), …])[key]`` (None if missing)."""

    def __init__(self, batch: BatchFn[K, A, R], *, max_in_flight: int = 2, max_batch: int = 500):
        self._batch = batch
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._waiting: dict[K, tuple[A, asyncio.Future[R | None]]] = {}
        self._later: list[tuple[K, A, asyncio.Future[R | None]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Future[None]] = set()
        self.batches = 0
        """How many batches ran (for tests and metrics)."""

    async def submit(self, key: K, arg: A) -> R | None:
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        if key in self._waiting:
            self._later.append((key, arg, future))
        else:
            self._waiting[key] = (arg, future)
        if self._in_flight < self._max_in_flight:
            self._start()
        return await future

    def _start(self) -> None:
        if not self._waiting:
            return
        items = self._waiting
        if len(items) > self._max_batch:
            keys = list(items)[: self._max_batch]
            items = {key: self._waiting.pop(key) for key in keys}
        else:
            self._waiting = {}
        later, self._later = self._later, []
        for key, arg, future in later:
            if key in self._waiting:
                self._later.append((key, arg, future))
            else:
                self._waiting[key] = (arg, future)
        self._in_flight += 1
        task = asyncio.ensure_future(self._run(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, items: dict[K, tuple[A, asyncio.Future[R | None]]]) -> None:
        try:
            results = await self._batch([(key, arg) for key, (arg, _) in items.items()])
        except Exception as exc:  # every caller of the batch learns it failed
            for _, future in items.values():
                if not future.done():
                    future.set_exception(exc)
        except BaseException:
            for _, future in items.values():
                future.cancel()
            raise
        else:
            for key, (_, future) in items.items():
                if not future.done():
                    future.set_result(results.get(key))
        finally:
            self.batches += 1
            self._in_flight -= 1
            if self._in_flight < self._max_in_flight:
                self._start()
