"""The envelope every event and command carries.

``id`` doubles as the JetStream ``Nats-Msg-Id`` and as the idempotency key of every consumer.
``type`` is the versioned type name and equals the subject prefix the event is published on.
Trace context does not live in the body: it travels in NATS headers (``traceparent``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from zapflow.contracts.types import TenantId


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every value object inside a contract: immutable, tolerant of unknown fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(Contract):
    """Envelope fields shared by every event and command.

    ``subject_fields`` names, in order, the attributes (dotted paths) whose values follow the
    version token in the subject: ``("tenant_id",)`` gives ``<type>.<tenant>``; a subclass
    partitioned by channel declares ``("tenant_id", "channel_id")``.
    ``zapflow.contracts.subjects.subject_for`` reads it, so the subject shape is declared once,
    next to the fields it reads.
    """

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id",)

    id: UUID = Field(default_factory=uuid4, description="Unique id; also the Nats-Msg-Id.")
    type: str = Field(description="Versioned type name, equal to the subject prefix.")
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    tenant_id: TenantId
    correlation_id: UUID | None = Field(
        default=None, description="Id of the request or campaign this event belongs to."
    )
    causation_id: UUID | None = Field(default=None, description="Id of the event that caused it.")
