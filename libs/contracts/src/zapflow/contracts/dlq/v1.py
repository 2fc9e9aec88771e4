"""Dead-letter context v1: messages a service gave up on, kept for inspection and replay.

Every service publishes here through ``zapflow.runtime`` when a message failed permanently or ran
out of deliveries. Replaying republishes ``original_payload_b64`` to ``original_subject``.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from zapflow.contracts.common import Actor
from zapflow.contracts.envelope import Event
from zapflow.contracts.types import ServiceName


class DeadLettered(Event):
    """A service gave up on a message; the record keeps it byte for byte with the error."""

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id", "service")
    type: Literal["zf.dlq.dead_lettered.v1"] = "zf.dlq.dead_lettered.v1"
    service: ServiceName
    consumer: str | None = Field(default=None, description="Durable consumer that failed.")
    original_subject: str
    original_stream: str | None = None
    original_sequence: int | None = Field(default=None, ge=1)
    original_msg_id: str | None = Field(default=None, description="Its Nats-Msg-Id header.")
    original_type: str | None = Field(default=None, description="Its Zf-Type header, if any.")
    original_headers: dict[str, str] = Field(default_factory=dict)
    original_payload_b64: str = Field(description="The payload, byte for byte, base64-encoded.")
    error_class: str = Field(description="Qualified name of the exception class.")
    error_text: str = Field(description="The error message; never a message body or secret.")
    delivery_count: int = Field(ge=1)
    failed_at: AwareDatetime


class DeadLetterReplayed(Event):
    """A dead letter was republished to its original subject (an audit record)."""

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id", "service")
    type: Literal["zf.dlq.replayed.v1"] = "zf.dlq.replayed.v1"
    dead_letter_id: UUID = Field(description="Envelope id of the DeadLettered record.")
    service: ServiceName
    republished_subject: str
    republished_msg_id: str
    replayed_by: Actor | None = None
