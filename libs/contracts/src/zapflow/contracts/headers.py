"""NATS header names Zapflow reads and writes, and the headers every published event carries.

Trace context (``traceparent``/``tracestate``) is injected by the telemetry middleware; the rest
are set from the envelope by ``event_headers`` or by the runtime's dead-letter path.
"""

from __future__ import annotations

from typing import Final

from zapflow.contracts.envelope import Event

NATS_MSG_ID: Final = "Nats-Msg-Id"
"""JetStream de-duplication id; always the envelope ``id``."""
NATS_EXPECTED_STREAM: Final = "Nats-Expected-Stream"
"""Makes a publish fail unless the subject lands in this stream."""
TRACEPARENT: Final = "traceparent"
"""W3C trace context: trace id, parent span id, flags."""
TRACESTATE: Final = "tracestate"
"""W3C vendor-specific trace state."""
CONTENT_TYPE: Final = "Content-Type"
"""Payload media type; always ``application/json`` for contracts."""
ZF_TYPE: Final = "Zf-Type"
"""The event ``type``, so a consumer picks the model before parsing (``parse_event``)."""
ZF_TENANT: Final = "Zf-Tenant"
"""The event's ``tenant_id``."""
ZF_CORRELATION_ID: Final = "Zf-Correlation-Id"
"""The envelope ``correlation_id``, when set."""
ZF_ORIGINAL_SUBJECT: Final = "Zf-Original-Subject"
"""On a dead letter: the subject the failed message was consumed from."""
ZF_ORIGINAL_STREAM: Final = "Zf-Original-Stream"
"""On a dead letter: the stream of the failed message."""
ZF_ORIGINAL_SEQUENCE: Final = "Zf-Original-Sequence"
"""On a dead letter: the stream sequence of the failed message."""
ZF_ERROR_CLASS: Final = "Zf-Error-Class"
"""On a dead letter: qualified name of the exception."""
ZF_DELIVERY_COUNT: Final = "Zf-Delivery-Count"
"""On a dead letter: deliveries attempted before giving up."""
ZF_SERVICE: Final = "Zf-Service"
"""On a dead letter: the service that gave up."""
ZF_REPLAY_OF: Final = "Zf-Replay-Of"
"""On a replayed message: envelope id of the dead letter it came from."""

JSON: Final = "application/json"


def event_headers(event: Event) -> dict[str, str]:
    """Headers to publish ``event`` with: de-duplication id, type, tenant, correlation."""
    headers = {
        NATS_MSG_ID: str(event.id),
        ZF_TYPE: event.type,
        ZF_TENANT: event.tenant_id,
        CONTENT_TYPE: JSON,
    }
    if event.correlation_id is not None:
        headers[ZF_CORRELATION_ID] = str(event.correlation_id)
    return headers
