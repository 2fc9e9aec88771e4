"""The ports ingest's use cases talk to; adapters implement them, tests pass fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from zapflow.contracts.envelope import Event
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.ingest.outbound import SendEvent
from zapflow.providers import ParsedWebhook


class Publish(Protocol):
    """JetStream publish with ``Nats-Msg-Id`` = ``event.id`` (``zapflow.runtime.broker``)."""

    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> object: ...


@dataclass(frozen=True)
class Ingested:
    """What one raw webhook produced: the events to publish and how many media jobs it queued."""

    events: list[Event] = field(default_factory=list)
    media_jobs: int = 0


class IngestStore(Protocol):
    """The message store as the ingest-raw use case sees it."""

    async def ingest(
        self, evt: WebhookReceived, body: bytes, parsed: ParsedWebhook
    ) -> Ingested | None:
        """Store everything ``parsed`` carries in one transaction with the inbox row, the webhook
        log row and the outbox; None when ``evt`` was processed before."""
        ...

    async def outbox(self, source_event_id: UUID) -> list[Event]:
        """The events an earlier run of ``source_event_id`` wrote, in order."""
        ...

    async def record_failure(self, evt: WebhookReceived, body: bytes, error: str) -> None:
        """Log ``evt`` as failed (its own transaction; no inbox row, so a replay runs again)."""
        ...


class OutboundStore(Protocol):
    """The message store as the ingest-outbound use case sees it."""

    async def record(self, evt: SendEvent) -> list[Event] | None:
        """Apply ``evt`` (record the message, or move its status) in one transaction with the
        inbox row and the outbox; the events to publish, or None when ``evt`` was processed
        before."""
        ...

    async def outbox(self, source_event_id: UUID) -> list[Event]:
        """The events an earlier run of ``source_event_id`` wrote, in order."""
        ...


class BodyReader(Protocol):
    """Where webhook bodies too large to travel inline are kept (claim check)."""

    async def get(self, name: str) -> bytes:
        """The body; raises ``BodyNotFoundError`` if there is none under ``name``."""
        ...


class MediaStore(Protocol):
    """Where media bytes live: the filesystem by default, or an S3-compatible bucket."""

    async def put(self, key: str, data: bytes, mime_type: str | None) -> None: ...

    async def read(self, key: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; ``KeyError`` when the object is missing."""
        ...

    async def delete(self, key: str) -> None: ...


class CredentialsLookup(Protocol):
    """A channel's provider credentials, answered by the gateway over NATS request-reply."""

    async def __call__(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply: ...
