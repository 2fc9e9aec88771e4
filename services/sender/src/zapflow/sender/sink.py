"""Dead letters of the sender: ``zapflow.runtime.dlq`` records with the provider attempt count.

The runtime's ``DeadLetters`` counts JetStream deliveries; the sender retries in place, so a
message it gives up on was usually delivered once but tried at the provider several times. The
record says so in ``delivery_count``; the ``Nats-Msg-Id`` is the runtime's (one record per
stream sequence), so a crash between the record and ``term`` never writes a second one.
"""

from __future__ import annotations

import logging

from nats.aio.msg import Msg

from zapflow.contracts import headers as h
from zapflow.contracts.subjects import subject_for
from zapflow.runtime import dlq
from zapflow.sender import metrics
from zapflow.sender.ports import Publish

logger = logging.getLogger(__name__)


class Sink:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def dead_letter(self, msg: Msg, error: BaseException, attempts: int) -> None:
        record = dlq.record_for(msg, error, "sender").model_copy(
            update={"delivery_count": max(1, attempts)}
        )
        meta = msg.metadata
        dedup = f"dlq:{meta.stream}:{meta.sequence.stream}"
        await self._publish(subject_for(record), record, {h.NATS_MSG_ID: dedup})
        metrics.DEAD_LETTERED.inc()
        logger.warning(
            "dead-lettered send",
            extra={"dead_letter_id": str(record.id), "error": record.error_class},
        )
