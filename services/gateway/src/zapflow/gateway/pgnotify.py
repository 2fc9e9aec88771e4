"""PostgreSQL ``LISTEN`` on one dedicated connection, re-established forever.

Notifications are delivered only while connected, so every (re)connection calls ``on_connect``
(the cache reloads, the outbox relay looks for unsent rows): nothing is missed for long. A
liveness probe every ``probe_s`` seconds notices a dead connection even when the socket hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

logger = logging.getLogger(__name__)

Handler = Callable[[str], None]
"""Called with the notification's payload; must not block (queue work, set an event)."""


class PgListener:
    def __init__(
        self,
        dsn: str,
        handlers: Mapping[str, Handler],
        *,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        probe_s: float = 15.0,
        retry_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._handlers = dict(handlers)
        self._on_connect = on_connect
        self._probe_s = probe_s
        self._retry_s = retry_s
        self.connected = asyncio.Event()

    def _callback(self, handler: Handler) -> Callable[[Any, int, str, object], None]:
        def deliver(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
            handler(str(payload))

        return deliver

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._listen(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.warning("postgres listener lost, reconnecting", exc_info=True)
            self.connected.clear()
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._retry_s)

    async def _listen(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            for channel, handler in self._handlers.items():
                await conn.add_listener(channel, self._callback(handler))
            self.connected.set()
            if self._on_connect is not None:
                await self._on_connect()
            while not stop.is_set() and not lost.is_set():
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                await asyncio.wait(waiters, timeout=self._probe_s, return_when="FIRST_COMPLETED")
                for waiter in waiters:
                    waiter.cancel()
                if not stop.is_set() and not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=5)
        finally:
            try:
                await conn.close(timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()
