"""Dead letters: what a consumer gave up on, kept byte for byte with the error.

Records go to ``zf.dlq.dead_lettered.v1.<tenant>.<service>`` (stream ``ZF_DLQ``); the tenant is
the failed message's ``Zf-Tenant`` header, or the reserved system tenant when it carried none.
"""

from __future__ import annotations

import base64
import logging

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from zapflow.contracts import headers as h
from zapflow.contracts.dlq.v1 import DeadLettered
from zapflow.contracts.envelope import utcnow
from zapflow.contracts.subjects import subject_for
from zapflow.contracts.types import SYSTEM_TENANT_ID, ServiceName
from zapflow.runtime.broker import Publisher

logger = logging.getLogger(__name__)

_KEPT_HEADERS = (h.NATS_MSG_ID, h.ZF_TYPE, h.ZF_TENANT, h.ZF_CORRELATION_ID, h.TRACEPARENT)


def record_for(msg: Msg, exc: BaseException, service: ServiceName) -> DeadLettered:
    headers = dict(msg.headers or {})
    meta = msg.metadata
    return DeadLettered(
        tenant_id=headers.get(h.ZF_TENANT) or SYSTEM_TENANT_ID,
        service=service,
        consumer=meta.consumer,
        original_subject=msg.subject,
        original_stream=meta.stream,
        original_sequence=meta.sequence.stream,
        original_msg_id=headers.get(h.NATS_MSG_ID),
        original_type=headers.get(h.ZF_TYPE),
        original_headers={k: v for k, v in headers.items() if k in _KEPT_HEADERS},
        original_payload_b64=base64.b64encode(msg.data).decode(),
        error_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
        error_text=str(exc)[:500],
        delivery_count=meta.num_delivered,
        failed_at=utcnow(),
    )


def record_for_stored(
    *,
    subject: str,
    data: bytes,
    headers: dict[str, str],
    stream: str,
    sequence: int,
    consumer: str,
    delivery_count: int,
    exc: BaseException,
    service: ServiceName,
) -> DeadLettered:
    """:func:`record_for` of a message a consumer acknowledged after storing a copy of it (the
    sender's parked sends): the same record, from the copy."""
    return DeadLettered(
        tenant_id=headers.get(h.ZF_TENANT) or SYSTEM_TENANT_ID,
        service=service,
        consumer=consumer,
        original_subject=subject,
        original_stream=stream,
        original_sequence=sequence,
        original_msg_id=headers.get(h.NATS_MSG_ID),
        original_type=headers.get(h.ZF_TYPE),
        original_headers={k: v for k, v in headers.items() if k in _KEPT_HEADERS},
        original_payload_b64=base64.b64encode(data).decode(),
        error_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
        error_text=str(exc)[:500],
        delivery_count=delivery_count,
        failed_at=utcnow(),
    )


class DeadLetters:
    """The consumer's dead-letter port: publish a record, de-duplicated per original message."""

    def __init__(self, js: JetStreamContext, service: ServiceName) -> None:
        self._publish = Publisher(js)
        self._service = service

    async def __call__(self, msg: Msg, exc: BaseException) -> None:
        record = record_for(msg, exc, self._service)
        meta = msg.metadata
        # one record per (stream, sequence): a crash between publish and term adds no second one
        dedup = f"dlq:{meta.stream}:{meta.sequence.stream}"
        await self._publish(subject_for(record), record, {h.NATS_MSG_ID: dedup})
        logger.warning(
            "dead-lettered message",
            extra={"dead_letter_id": str(record.id), "consumer": meta.consumer},
        )
