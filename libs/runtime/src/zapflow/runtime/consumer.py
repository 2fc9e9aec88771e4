"""Durable pull consumers with one acknowledgement policy for the whole system.

A handler receives the raw ``nats.aio.msg.Msg`` and returns when its effects (DB writes,
publishes) are done; the consumer acks **last**. Outcomes are mapped here and nowhere else:

- success → ``ack``;
- :class:`TransientError` → ``nak`` with an exponential, jittered delay (or ``retry_after``);
- :class:`PermanentError` or a contract ``ValidationError`` → a dead-letter record, then ``term``;
- anything else → logged once, ``nak`` with backoff; on the last allowed delivery it is
  dead-lettered so nothing disappears silently when ``max_deliver`` is reached.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.contracts.streams import ConsumerSpec
from zapflow.runtime import metrics, telemetry

logger = logging.getLogger(__name__)

Handler = Callable[[Msg], Awaitable[None]]
DeadLetter = Callable[[Msg, BaseException], Awaitable[None]]


def backoff(attempt: int, base: float = 0.5, cap: float = 60.0) -> float:
    """Full-jitter exponential backoff in seconds for delivery ``attempt`` (1-based)."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempt - 1)))


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
    ) -> None:
        self.spec = spec
        self._js = js
        self._handler = handler
        self._dead_letter = dead_letter
        self._batch = batch
        self._fetch_timeout = fetch_timeout

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self._js.pull_subscribe_bind(self.spec.durable, stream=self.spec.stream)
        logger.info("consuming %s", self.spec.durable, extra={"stream": self.spec.stream})
        try:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self._batch, timeout=self._fetch_timeout)
                except (NatsTimeoutError, TimeoutError):
                    continue
                except NatsError as exc:  # e.g. 503 while the consumer elects a new leader
                    if stop.is_set():
                        break
                    logger.warning(
                        "fetch failed, will retry",
                        extra={"consumer": self.spec.durable, "error": type(exc).__name__},
                    )
                    await asyncio.sleep(random.uniform(0.5, 1.0))
                    continue
                for i, msg in enumerate(msgs):
                    if stop.is_set():
                        for rest in msgs[i:]:
                            await rest.nak()
                        break
                    await self.handle(msg)
        finally:
            await sub.unsubscribe()

    async def handle(self, msg: Msg) -> None:
        name = self.spec.durable
        attempt = msg.metadata.num_delivered
        started = time.perf_counter()
        outcome = "ack"
        try:
            ctx = telemetry.extract(msg.headers)
            with telemetry.tracer.start_as_current_span(
                f"{name} process", context=ctx, kind=SpanKind.CONSUMER
            ):
                await self._handler(msg)
        except TransientError as exc:
            outcome = "retry"
            delay = exc.retry_after if exc.retry_after is not None else backoff(attempt)
            logger.warning(
                "transient failure, will retry",
                extra={"consumer": name, "attempt": attempt, "code": exc.code, "delay_s": delay},
            )
            await self._retry_or_dead_letter(msg, exc, delay)
        except (PermanentError, ValidationError) as exc:
            outcome = "dead_letter"
            logger.error(
                "permanent failure, dead-lettered",
                extra={"consumer": name, "error": type(exc).__name__},
            )
            await self._dead_letter(msg, exc)
            await msg.term()
        except Exception as exc:
            outcome = "error"
            logger.exception("handler failed", extra={"consumer": name, "attempt": attempt})
            await self._retry_or_dead_letter(msg, exc, backoff(attempt))
        else:
            await msg.ack()
        finally:
            metrics.CONSUMED.labels(name, outcome).inc()
            metrics.HANDLE_SECONDS.labels(name).observe(time.perf_counter() - started)

    async def _retry_or_dead_letter(self, msg: Msg, exc: BaseException, delay: float) -> None:
        if msg.metadata.num_delivered >= self.spec.max_deliver > 0:
            await self._dead_letter(msg, exc)
            await msg.term()
        else:
            await msg.nak(delay=delay)
