"""Dead letters of the sender: ``zapflow.runtime.dlq`` records with the provider attempt count.

The runtime's ``DeadLetters`` counts JetStream deliveries; the sender retries in place, so a
message it gives up on was usually delivered once but tried at the provider several times. The
record says so in ``delivery_count``; the ``Nats-Msg-Id`` is the runtime's (one record per
stream sequence), so a crash between the record and ``term`` never writes a second one. A
parked send (``zapflow.sender.parking``) was acknowledged on JetStream when it was parked; its
record is built from the stored copy, with the same stream, sequence and ``Nats-Msg-Id``.
"""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from zapflow.contracts import headers as h
from zapflow.contracts.dlq.v1 import DeadLettered
from zapflow.contracts.streams import ZF_SENDER
from zapflow.contracts.subjects import subject_for
from zapflow.runtime import dlq
from zapflow.sender import metrics
from zapflow.sender.ports import ParkedSend, Publish

logger = logging.getLogger(__name__)


class Sink:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def dead_letter(self, msg: Msg, error: BaseException, attempts: int) -> None:
        record = dlq.record_for(msg, error, "sender").model_copy(
            update={"delivery_count": max(1, attempts)}
        )
        await self._write(record)

    async def dead_letter_parked(
        self, send: ParkedSend, consumer: str, error: BaseException, attempts: int
    ) -> None:
        """The record of a parked send, from its stored copy (same stream and sequence)."""
        record = dlq.build_record(
            service="sender",
            consumer=consumer,
            subject=send.subject,
            stream=ZF_SENDER.name,
            sequence=send.seq,
            headers=send.headers,
            data=send.payload,
            error=error,
            delivery_count=attempts,
        )
        await self._write(record)

    async def _write(self, record: DeadLettered) -> None:
        assert record.original_stream is not None
        assert record.original_sequence is not None
        dedup = dlq.dedup_id(record.original_stream, record.original_sequence)
        await self._publish(subject_for(record), record, {h.NATS_MSG_ID: dedup})
        metrics.DEAD_LETTERED.inc()
        logger.warning(
            "dead-lettered send",
            extra={"dead_letter_id": str(record.id), "error": record.error_class},
        )
