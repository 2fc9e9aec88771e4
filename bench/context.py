"""What a benchmark's ``run(ctx)`` receives: the shared servers, the run's settings, a memo."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from bench.load import LoadSettings

T = TypeVar("T")


@dataclass
class Context:
    """Shared by every benchmark of one run.

    ``nats_url`` points at the run's nats-server (JetStream on, file storage in a temp dir): use a
    stream name of your own and delete it when done. ``database(name)`` creates a database on the
    run's PostgreSQL (``fast`` mode: fsync and synchronous commit off) and returns its DSN.
    ``duration`` is the measured window of a loop benchmark and ``load`` the HTTP load settings;
    both shrink with ``--quick``. ``once`` measures a reference at most once per run, so a later
    benchmark asks for the reference it is compared with instead of re-measuring it.
    """

    nats_url: str
    create_database: Callable[[str], str]
    workdir: Path
    quick: bool
    duration: float
    load: LoadSettings
    postgres_pid: int | None = None
    """The run's PostgreSQL postmaster (its backends are its children), for CPU accounting."""
    _memo: dict[str, Any] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @property
    def warmup(self) -> float:
        """Seconds to run a loop benchmark before its measured window."""
        return min(1.0, self.duration / 3)

    async def database(self, name: str) -> str:
        """Create database ``name`` once per run and return its DSN."""
        return await self.once(
            f"database:{name}", lambda: asyncio.to_thread(self.create_database, name)
        )

    async def once(self, key: str, measure: Callable[[], Awaitable[T]]) -> T:
        """Return the result stored under ``key``, awaiting ``measure()`` the first time only.

        The key must name everything the result depends on (e.g. the request of a load test).
        A failed measurement is not stored, so the next caller tries again.
        """
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._memo:
                self._memo[key] = await measure()
            return cast(T, self._memo[key])

    def log_path(self, name: str) -> Path:
        """A file in the run's temp dir for a subprocess's output (e.g. uvicorn)."""
        return self.workdir / f"{name}.log"
