"""Dead letters: what a consumer gave up on, kept byte for byte with the error.

Records go to ``zf.dlq.dead_lettered.v1.<tenant>.<service>`` (stream ``ZF_DLQ``); the tenant is
the failed message's ``Zf-Tenant`` header, or the reserved system tenant when it carried none.
One record per original message: its ``Nats-Msg-Id`` is ``dlq:<stream>:<sequence>``, so a crash
between the record and the ``term``, or a record written by both the consumer and the
max-deliveries watcher, adds no second one (within ``ZF_DLQ``'s duplicate window).

The error text goes through ``zapflow.runtime.faults.describe``: no ``DETAIL:  Key (…)=(…)`` or
other values a database put in its message.

**Nothing runs out of deliveries silently.** A consumer dead-letters a message itself when it
gives up on its last delivery. When it never gets to decide — the handler hung past ``ack_wait``
on every delivery, the process stalled or died on that message each time — JetStream stops
delivering it and publishes a max-deliveries advisory. :class:`MaxDeliveriesWatch` listens to the
advisories of the service's own consumers (one replica per advisory, queue group
``zf-<service>-advisories``), reads the message it names by stream sequence and dead-letters it.
Advisories are core NATS: one sent while no replica of the service is connected is not seen.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from typing import Final

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from zapflow.contracts import headers as h
from zapflow.contracts.dlq.v1 import DeadLettered
from zapflow.contracts.envelope import utcnow
from zapflow.contracts.streams import ConsumerSpec
from zapflow.contracts.subjects import max_deliveries_advisory, subject_for
from zapflow.contracts.types import SYSTEM_TENANT_ID, ServiceName
from zapflow.runtime.broker import Publisher
from zapflow.runtime.faults import describe

logger = logging.getLogger(__name__)

_KEPT_HEADERS = (h.NATS_MSG_ID, h.ZF_TYPE, h.ZF_TENANT, h.ZF_CORRELATION_ID, h.TRACEPARENT)


class MaxDeliveriesExceeded(Exception):
    """JetStream stopped delivering a message its consumer never settled (see module docstring)."""


def build_record(
    *,
    service: ServiceName,
    consumer: str | None,
    subject: str,
    stream: str,
    sequence: int,
    headers: Mapping[str, str] | None,
    data: bytes,
    error: BaseException,
    delivery_count: int,
) -> DeadLettered:
    kept = dict(headers or {})
    return DeadLettered(
        tenant_id=kept.get(h.ZF_TENANT) or SYSTEM_TENANT_ID,
        service=service,
        consumer=consumer,
        original_subject=subject,
        original_stream=stream,
        original_sequence=sequence,
        original_msg_id=kept.get(h.NATS_MSG_ID),
        original_type=kept.get(h.ZF_TYPE),
        original_headers={k: v for k, v in kept.items() if k in _KEPT_HEADERS},
        original_payload_b64=base64.b64encode(data).decode(),
        error_class=f"{type(error).__module__}.{type(error).__qualname__}",
        error_text=describe(error),
        delivery_count=max(1, delivery_count),
        failed_at=utcnow(),
    )


def record_for(msg: Msg, exc: BaseException, service: ServiceName) -> DeadLettered:
    meta = msg.metadata
    return build_record(
        service=service,
        consumer=meta.consumer,
        subject=msg.subject,
        stream=meta.stream,
        sequence=meta.sequence.stream,
        headers=msg.headers,
        data=msg.data,
        error=exc,
        delivery_count=meta.num_delivered,
    )


def dedup_id(stream: str, sequence: int) -> str:
    """The ``Nats-Msg-Id`` of the dead letter of one stored message."""
    return f"dlq:{stream}:{sequence}"


class DeadLetters:
    """The consumer's dead-letter port: publish a record, de-duplicated per original message."""

    def __init__(self, js: JetStreamContext, service: ServiceName) -> None:
        self._publish = Publisher(js)
        self._service = service

    async def __call__(self, msg: Msg, exc: BaseException) -> None:
        await self.publish(record_for(msg, exc, self._service))

    async def publish(self, record: DeadLettered) -> None:
        assert record.original_stream is not None
        assert record.original_sequence is not None
        dedup = dedup_id(record.original_stream, record.original_sequence)
        await self._publish(subject_for(record), record, {h.NATS_MSG_ID: dedup})
        logger.warning(
            "dead-lettered message",
            extra={"dead_letter_id": str(record.id), "consumer": record.consumer},
        )


ADVISORY_TYPE: Final = "io.nats.jetstream.advisory.v1.max_deliver"


class MaxDeliveriesWatch:
    """Dead-letters the messages JetStream gave up delivering to ``specs`` (module docstring)."""

    def __init__(
        self, nc: NATS, js: JetStreamContext, service: ServiceName, specs: Iterable[ConsumerSpec]
    ) -> None:
        self._nc = nc
        self._js = js
        self._service = service
        self._specs = {(s.stream, s.durable) for s in specs}
        self._dead_letters = DeadLetters(js, service)

    async def start(self) -> list[Subscription]:
        queue = f"zf-{self._service}-advisories"
        return [
            await self._nc.subscribe(max_deliveries_advisory(stream, durable), queue, self.handle)
            for stream, durable in sorted(self._specs)
        ]

    async def handle(self, msg: Msg) -> None:
        try:
            advisory = orjson.loads(msg.data)
            stream, consumer = str(advisory["stream"]), str(advisory["consumer"])
            sequence, deliveries = int(advisory["stream_seq"]), int(advisory["deliveries"])
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable max-deliveries advisory", extra={"subject": msg.subject})
            return
        if (stream, consumer) not in self._specs:
            return
        try:
            await self._dead_letter(stream, consumer, sequence, deliveries)
        except Exception:  # e.g. NATS went away meanwhile: logged with the ids to look for
            logger.exception(
                "could not dead-letter a message out of deliveries",
                extra={"stream": stream, "consumer": consumer, "seq": sequence},
            )

    async def _dead_letter(self, stream: str, consumer: str, sequence: int, count: int) -> None:
        try:
            stored = await self._js.get_msg(stream, sequence)
        except NotFoundError:  # settled or removed meanwhile: nothing left to keep
            logger.info("message out of deliveries is gone", extra={"seq": sequence})
            return
        error = MaxDeliveriesExceeded(
            f"{consumer} ran out of deliveries ({count}) without an outcome: its handler hung "
            "past ack_wait or its process stalled or died on it"
        )
        record = build_record(
            service=self._service,
            consumer=consumer,
            subject=stored.subject or "",
            stream=stream,
            sequence=sequence,
            headers=stored.headers,
            data=stored.data or b"",
            error=error,
            delivery_count=count,
        )
        logger.error(
            "message ran out of deliveries",
            extra={"consumer": consumer, "seq": sequence, "deliveries": count},
        )
        await self._dead_letters.publish(record)
