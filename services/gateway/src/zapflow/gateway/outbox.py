"""The transactional outbox relay: channel events reach JetStream exactly when their change did.

Why: a use case that committed a channel change and then published its event directly could
crash (or lose NATS) between the two, and the other services would never learn of the change;
publishing first could announce a change that then failed to commit. Instead the event is
written to ``outbox`` **in the same transaction** as the change (``store.enqueue``), and this
relay, running inside every gateway process, publishes it afterwards.

How:

1. A statement trigger on ``outbox`` sends ``NOTIFY zf_gateway_outbox`` at commit; the relay
   wakes on it (:mod:`zapflow.gateway.pgnotify`), or every ``outbox_poll_s`` if it missed one.
2. In one transaction it takes ``pg_try_advisory_xact_lock`` — so one replica relays at a time
   and events leave in commit order (``seq``) — reads a batch of unsent rows, publishes each to
   JetStream with ``Nats-Msg-Id`` = the event id (and the headers captured at enqueue time,
   trace context included), waits for each ack, then marks the published rows ``sent_at``.
3. If a publish fails, the rows published so far are marked, the rest stay unsent and are retried
   after a short back-off. If the process dies after publishing but before marking, the next
   round publishes those rows again: JetStream drops them as duplicates within the stream's
   duplicate window, and consumers are idempotent by event id beyond it — at-least-once, never
   lost.
4. Sent rows are deleted after ``outbox_retention_days``, and the API's idempotency keys
   (``send_requests``) after ``idempotency_retention_days``, in the same hourly pass.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

import asyncpg
import orjson
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from zapflow.gateway import store
from zapflow.runtime import metrics

logger = logging.getLogger(__name__)

LOCK_KEY: Final = "zf:gateway:outbox"
PURGE_EVERY_S: Final = 3600.0


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        js: JetStreamContext,
        *,
        poll_s: float = 1.0,
        batch: int = 100,
        publish_timeout_s: float = 5.0,
        retention_days: int = 7,
        idempotency_retention_days: int = 30,
    ) -> None:
        self._pool = pool
        self._js = js
        self._poll_s = poll_s
        self._batch = batch
        self._timeout = publish_timeout_s
        self._retention_days = retention_days
        self._idempotency_retention_days = idempotency_retention_days
        self._wake = asyncio.Event()
        self._last_purge = 0.0

    def wake(self, _payload: str = "") -> None:
        """Relay soon (a notification arrived)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                while await self.relay_once() == self._batch:
                    pass
                await self._purge_now_and_then()
            except (
                OSError,
                NatsError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
            ):
                logger.warning("outbox relay failed, will retry", exc_info=True)
                await asyncio.sleep(self._poll_s)
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=self._poll_s, return_when="FIRST_COMPLETED")
            for waiter in waiters:
                waiter.cancel()

    async def relay_once(self) -> int:
        """Publish one batch of unsent events; returns how many were published."""
        published: list[int] = []
        failure: Exception | None = None
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", LOCK_KEY):
                return 0
            for row in await store.unsent(conn, self._batch):
                try:
                    await self._js.publish(
                        row["subject"],
                        row["payload"],
                        timeout=self._timeout,
                        headers=orjson.loads(row["headers"]),
                    )
                except (NatsError, TimeoutError) as exc:
                    failure = exc  # keep what was published: mark it, commit, then report
                    break
                metrics.PUBLISHED.labels(row["event_type"]).inc()
                published.append(row["seq"])
            if published:
                await store.mark_sent(conn, published)
        if published:
            logger.info("relayed outbox events", extra={"count": len(published)})
        if failure is not None:
            raise failure
        return len(published)

    async def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = now
        purged = await store.purge_sent(self._pool, self._retention_days)
        if purged:
            logger.info("purged sent outbox rows", extra={"count": purged})
        forgotten = await store.purge_send_requests(self._pool, self._idempotency_retention_days)
        if forgotten:
            logger.info("purged expired idempotency keys", extra={"count": forgotten})
