"""Durable pull consumers with one acknowledgement policy for the whole system.

A handler receives the raw ``nats.aio.msg.Msg`` and returns when its effects (DB writes,
publishes) are done; the consumer acks **last**. Outcomes are mapped here and nowhere else:

- success → ``ack``;
- :class:`PermanentError` or a contract ``ValidationError`` → a dead-letter record, then ``term``;
- an **infrastructure** error (``zapflow.runtime.faults.is_infrastructure``: PostgreSQL or NATS
  unreachable, a pool or request timeout) → the message is *kept*: ``in_progress`` every few
  seconds, the handler runs again in place after a capped backoff (``wait_cap_s``), and no
  delivery is spent (no ``nak``), so an outage of any length dead-letters nothing and keeps the
  order of a partition;
- :class:`TransientError` → ``nak`` with an exponential, jittered delay (or ``retry_after``);
- anything else → logged once, ``nak`` with backoff.

A handler runs at most ``handler_timeout_s`` (default 80 % of the consumer's ``ack_wait``, so it
ends before JetStream would hand the message to someone else); a run that takes longer is
cancelled and counts as a failure (:class:`HandlerTimeoutError`). On the last allowed delivery a
failure is dead-lettered, so nothing disappears silently when ``max_deliver`` is reached; what a
consumer never gets to settle (its process stalled on it) is dead-lettered from JetStream's
max-deliveries advisory (``zapflow.runtime.dlq.MaxDeliveriesWatch``).

A partition's consumer gets ``holds`` (``zapflow.runtime.partitions.Ownership.held``): it is
checked before every fetch and every message, and a consumer that no longer holds its partition
returns at once without touching what it fetched. The next owner starts with ``fresh=True``: it
resets the durable's delivery state (JetStream consumer reset, nats-server 2.14+), so whatever
the previous owner had fetched and not acknowledged is delivered again *at once and in stream
order* instead of one ``ack_wait`` later, after newer messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.contracts.streams import ConsumerSpec
from zapflow.runtime import metrics, telemetry
from zapflow.runtime.broker import consumer_config
from zapflow.runtime.faults import describe, is_infrastructure

logger = logging.getLogger(__name__)

Handler = Callable[[Msg], Awaitable[None]]
BatchHandler = Callable[[Sequence[Msg]], Awaitable[None]]
DeadLetter = Callable[[Msg, BaseException], Awaitable[None]]

HANDLER_SHARE_OF_ACK_WAIT: Final = 0.8
WAIT_LOG_EVERY_S: Final = 30.0


def backoff(attempt: int, base: float = 0.5, cap: float = 60.0) -> float:
    """Full-jitter exponential backoff in seconds for delivery ``attempt`` (1-based)."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempt - 1)))


def _always() -> bool:
    return True


class HandlerTimeoutError(Exception):
    """The handler ran longer than the consumer allows; counted like any other failure."""


class ConsumerGoneError(Exception):
    """The durable consumer does not exist on the server any more; the consumer's task ends
    (its supervisor starts it again, which declares it anew)."""


class Consumer:
    """Fetches batches from one durable consumer and runs ``handler`` on each message in order."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handler: Handler,
        *,
        dead_letter: DeadLetter,
        batch: int = 64,
        fetch_timeout: float = 1.0,
        holds: Callable[[], bool] | None = None,
        fresh: bool = False,
        handler_timeout_s: float | None = None,
        wait_cap_s: float = 5.0,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        self.spec = spec
        self._js = js
        self._handler = handler
        self._batch_handler = batch_handler
        self._dead_letter = dead_letter
        self._batch = batch
        self._fetch_timeout = fetch_timeout
        self._holds = holds or _always
        self._fresh = fresh
        self._handler_timeout_s = handler_timeout_s or spec.ack_wait_s * HANDLER_SHARE_OF_ACK_WAIT
        # in_progress often enough that the message never reaches its ack_wait while it waits
        self._wait_cap_s = min(wait_cap_s, spec.ack_wait_s / 3)

    async def run(self, stop: asyncio.Event) -> None:
        # declared again here, so that a restart after the consumer was deleted recreates it
        await self._js.add_consumer(self.spec.stream, consumer_config(self.spec))
        if self._fresh:
            await self._reset()
        sub = await self._js.pull_subscribe_bind(self.spec.durable, stream=self.spec.stream)
        logger.info("consuming %s", self.spec.durable, extra={"stream": self.spec.stream})
        refused = 0
        try:
            while not stop.is_set() and self._holds():
                try:
                    msgs = await sub.fetch(self._batch, timeout=self._fetch_timeout)
                except (NatsTimeoutError, TimeoutError):
                    continue
                except APIError as exc:  # 503: JetStream recovering, or the consumer is gone
                    refused += 1
                    await self._after_refusal(exc, refused, stop)
                    continue
                except NatsError as exc:  # the connection dropped: the client reconnects
                    if stop.is_set() or not is_infrastructure(exc):
                        raise
                    await asyncio.sleep(random.uniform(0.5, 1.0))
                    continue
                refused = 0
                batched = self._batch_handler is not None and len(msgs) > 1
                if batched and await self.handle_batch(msgs, stop):
                    continue
                for i, msg in enumerate(msgs):
                    if not self._holds():
                        return  # not ours any more: the next owner gets them, untouched
                    if stop.is_set():
                        for rest in msgs[i:]:
                            await _quietly(rest.nak())
                        break
                    await self.handle(msg, stop)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _reset(self) -> None:
        """Deliver again at once, from the ack floor, what a previous owner left unacknowledged."""
        if not self._holds():
            return  # never touch a consumer the next owner may be working already
        try:
            await self._js.reset_consumer(self.spec.stream, self.spec.durable)
        except APIError as exc:
            if is_infrastructure(exc):
                raise
            # an older server: what the previous owner held comes back after its ack_wait
            logger.warning("consumer reset refused", extra={"consumer": self.spec.durable})

    async def _after_refusal(self, exc: APIError, refused: int, stop: asyncio.Event) -> None:
        try:
            await self._js.consumer_info(self.spec.stream, self.spec.durable)
        except NotFoundError as gone:
            raise ConsumerGoneError(self.spec.durable) from gone
        except Exception as info_exc:
            if not is_infrastructure(info_exc):
                raise
        if refused == 1:
            logger.warning(
                "fetch refused, waiting", extra={"consumer": self.spec.durable, "error": str(exc)}
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(self._wait_cap_s, 0.1 * 2**refused))

    async def handle_batch(self, msgs: Sequence[Msg], stop: asyncio.Event) -> bool:
        """Run the batch handler on a whole fetch and ack every message after it returned (its
        writes and publishes done). An infrastructure error is waited out in place for the whole
        batch, like one message's; any other failure returns False and the messages are handled
        one by one (the batch handler's effects are the single handler's, applied in order, and
        idempotent), so one bad message is dead-lettered alone. True when the batch is settled
        (or left to the next owner)."""
        assert self._batch_handler is not None
        name = self.spec.durable
        started = time.perf_counter()
        waits = 0
        try:
            while True:
                if not self._holds():
                    return True  # not ours any more: the next owner gets them, untouched
                try:
                    async with asyncio.timeout(self._handler_timeout_s):
                        await self._batch_handler(msgs)
                except Exception as exc:
                    if is_infrastructure(exc) and not isinstance(exc, PermanentError):
                        waits += 1
                        if waits == 1:
                            metrics.WAITING.labels(name).inc(len(msgs))
                        if await self._wait_batch(msgs, exc, waits, stop):
                            continue
                        return True
                    logger.warning(
                        "batch failed, handling its messages one by one",
                        extra={"consumer": name, "size": len(msgs), "error": describe(exc)},
                    )
                    return False
                for msg in msgs:
                    await _quietly(msg.ack())
                metrics.CONSUMED.labels(name, "ack").inc(len(msgs))
                return True
        finally:
            if waits:
                metrics.WAITING.labels(name).dec(len(msgs))
            metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)

    async def _wait_batch(
        self, msgs: Sequence[Msg], exc: BaseException, waits: int, stop: asyncio.Event
    ) -> bool:
        """:meth:`_wait_in_place` for a whole batch: every message kept alive meanwhile."""
        for msg in msgs[1:]:
            await _quietly(msg.in_progress())
        keep = await self._wait_in_place(msgs[0], exc, waits, stop)
        if not keep and stop.is_set() and self._holds():
            for msg in msgs[1:]:
                await _quietly(msg.nak())
        return keep

    async def handle(self, msg: Msg, stop: asyncio.Event | None = None) -> None:
        """Run the handler on ``msg`` and settle it (module docstring)."""
        name = self.spec.durable
        started = time.perf_counter()
        outcome = "ack"
        waits = 0
        try:
            while True:
                try:
                    await self._run_handler(msg)
                except Exception as exc:
                    if is_infrastructure(exc) and not isinstance(exc, PermanentError):
                        waits += 1
                        if waits == 1:
                            metrics.WAITING.labels(name).inc()
                        if await self._wait_in_place(msg, exc, waits, stop):
                            continue
                        outcome = "left"
                        return
                    outcome = await self._failed(msg, exc)
                else:
                    await self._settle(msg, "ack", stop)
                return
        finally:
            if waits:
                metrics.WAITING.labels(name).dec()
            metrics.CONSUMED.labels(name, outcome).inc()
            metrics.HANDLE_SECONDS.labels(name).observe(time.perf_counter() - started)

    async def _run_handler(self, msg: Msg) -> None:
        ctx = telemetry.extract(msg.headers)
        with telemetry.tracer.start_as_current_span(
            f"{self.spec.durable} process", context=ctx, kind=SpanKind.CONSUMER
        ):
            budget = asyncio.timeout(self._handler_timeout_s)
            try:
                async with budget:
                    await self._handler(msg)
            except TimeoutError:
                if budget.expired():
                    raise HandlerTimeoutError(
                        f"handler ran longer than {self._handler_timeout_s:g}s"
                    ) from None
                raise

    async def _wait_in_place(
        self, msg: Msg, exc: BaseException, waits: int, stop: asyncio.Event | None
    ) -> bool:
        """Keep ``msg`` while the infrastructure is away; False when it must be left (stopping
        or the partition is not ours any more)."""
        delay = random.uniform(0.5, 1.0) * min(self._wait_cap_s, 0.1 * 2 ** min(waits, 10))
        if waits == 1 or waits % max(1, int(WAIT_LOG_EVERY_S / self._wait_cap_s)) == 0:
            logger.warning(
                "infrastructure unavailable, message kept and retried in place",
                extra={
                    "consumer": self.spec.durable,
                    "seq": msg.metadata.sequence.stream,
                    "error": type(exc).__name__,
                    "waits": waits,
                },
            )
        await _quietly(msg.in_progress())
        if stop is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        if not self._holds():
            return False
        if stop is not None and stop.is_set():
            await _quietly(msg.nak())  # redelivered at once to whoever consumes next
            return False
        return True

    async def _failed(self, msg: Msg, exc: Exception) -> str:
        """Map a handler failure that is not the infrastructure's; returns the outcome."""
        name, attempt = self.spec.durable, msg.metadata.num_delivered
        if isinstance(exc, PermanentError | ValidationError):
            logger.error(
                "permanent failure, dead-lettered",
                extra={"consumer": name, "error": type(exc).__name__},
            )
            await self._settle(msg, "dead_letter", None, exc)
            return "dead_letter"
        if isinstance(exc, TransientError):
            delay = exc.retry_after if exc.retry_after is not None else backoff(attempt)
            logger.warning(
                "transient failure, will retry",
                extra={"consumer": name, "attempt": attempt, "code": exc.code, "delay_s": delay},
            )
            await self._retry_or_dead_letter(msg, exc, delay)
            return "retry"
        if isinstance(exc, HandlerTimeoutError):
            logger.error("handler timed out", extra={"consumer": name, "attempt": attempt})
        else:
            logger.exception(
                "handler failed",
                extra={"consumer": name, "attempt": attempt, "error": describe(exc)},
            )
        await self._retry_or_dead_letter(msg, exc, backoff(attempt))
        return "error"

    async def _retry_or_dead_letter(self, msg: Msg, exc: BaseException, delay: float) -> None:
        if msg.metadata.num_delivered >= self.spec.max_deliver > 0:
            await self._settle(msg, "dead_letter", None, exc)
        else:
            await _quietly(msg.nak(delay=delay))

    async def _settle(
        self,
        msg: Msg,
        how: str,
        stop: asyncio.Event | None,
        exc: BaseException | None = None,
    ) -> None:
        """Ack, or dead-letter then term; a dead-letter write that meets an infrastructure
        error is retried in place (the message kept alive) until it is written."""
        if how == "ack":
            await _quietly(msg.ack())  # lost: redelivered and handled again, idempotently
            return
        assert exc is not None
        waits = 0
        while True:
            try:
                await self._dead_letter(msg, exc)
                break
            except Exception as failure:
                if not is_infrastructure(failure) or not self._holds():
                    raise
                waits += 1
                await _quietly(msg.in_progress())
                await asyncio.sleep(min(self._wait_cap_s, 0.1 * 2 ** min(waits, 10)))
        await _quietly(msg.term())


async def _quietly(settle: Awaitable[None]) -> None:
    """An ack, nak, term or in_progress: when NATS is away it is lost, and JetStream delivers
    the message again after its ``ack_wait`` (handled idempotently)."""
    try:
        await settle
    except Exception as exc:
        if not is_infrastructure(exc):
            raise
        logger.debug("settling a message failed: %s", type(exc).__name__)
