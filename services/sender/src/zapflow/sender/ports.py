"""What the send use case needs from the outside world, as Protocols (fakes in unit tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from nats.js.api import PubAck

from zapflow.contracts.channels.v1 import ChannelSettings
from zapflow.contracts.envelope import Event
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.sending.v1 import SendRequest
from zapflow.providers import SendResult
from zapflow.sender.domain import AttemptRecord, State


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """The first ``sending`` row of a message."""

    message_id: UUID
    tenant_id: str
    channel_id: str
    provider: str
    local_day: date
    replay_of: UUID | None = None


class AttemptStore(Protocol):
    """``send_attempts`` and ``pace_state``: the sender's own tables."""

    async def lookup(self, message_ids: Sequence[UUID]) -> dict[UUID, AttemptRecord]: ...

    async def get(self, message_id: UUID) -> AttemptRecord | None: ...

    async def begin(self, attempt: NewAttempt) -> AttemptRecord | None:
        """Insert the first attempt as ``sending``; None if the message already has a row."""
        ...

    async def next_attempt(self, message_id: UUID, *, expected: State) -> AttemptRecord | None:
        """``expected`` -> ``sending`` with attempts + 1; None if the row is not in ``expected``."""
        ...

    async def record_accepted(
        self, message_id: UUID, provider_message_id: str
    ) -> AttemptRecord: ...

    async def record_retry(
        self, message_id: UUID, *, rate_limited: bool, code: str | None, text: str
    ) -> AttemptRecord: ...

    async def record_failed(
        self,
        attempt: NewAttempt,
        *,
        reason: str,
        permanent: bool,
        code: str | None,
        text: str,
    ) -> AttemptRecord:
        """Final failure; inserts the row when the message never reached a provider call.
        Never overwrites ``accepted``."""
        ...

    async def reset_for_replay(self, message_id: UUID, replay_of: UUID) -> None: ...

    async def daily_count(self, tenant_id: str, channel_id: str, day: date) -> int: ...

    async def pace_factor(self, tenant_id: str, channel_id: str) -> float | None: ...

    async def save_pace_factor(self, tenant_id: str, channel_id: str, factor: float) -> None: ...


@dataclass(frozen=True, slots=True)
class ParkedSend:
    """An approved send kept in ``parked_sends`` instead of memory (byte for byte)."""

    message_id: UUID
    tenant_id: str
    channel_id: str
    partition: int
    seq: int
    subject: str
    headers: dict[str, str]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Backlog:
    """What a channel has parked: how many, first and last stream sequence."""

    parked: int
    first_seq: int
    last_seq: int


class ParkStore(Protocol):
    """``parked_sends``: the sender's durable per-channel queue (``zapflow.sender.parking``)."""

    async def park(self, sends: Sequence[ParkedSend]) -> None:
        """Insert (a message id parked before is left as it is); returns once committed."""
        ...

    async def backlog(self, partition: int) -> dict[tuple[str, str], Backlog]: ...

    async def next(
        self, tenant_id: str, channel_id: str, *, after_seq: int, through_seq: int, limit: int
    ) -> list[ParkedSend]:
        """The channel's parked sends with ``after_seq < seq <= through_seq``, in order."""
        ...

    async def remove(self, message_id: UUID) -> None: ...


class ChannelDirectory(Protocol):
    """The sender's copy of every channel's settings (replayed from ``ZF_CHANNELS``)."""

    async def settings(self, tenant_id: str, channel_id: str) -> ChannelSettings | None:
        """The channel's settings; waits for the replay to catch up before answering None."""
        ...


class CredentialSource(Protocol):
    """Provider credentials, asked from the gateway and cached for a while."""

    async def get(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        """Raises ``TransientError`` when the gateway does not answer."""
        ...

    def invalidate(self, tenant_id: str, channel_id: str) -> None: ...


class ProviderPort(Protocol):
    """One provider call through ``zapflow.providers``; raises ``ProviderError`` subclasses."""

    async def send(
        self,
        settings: ChannelSettings,
        credentials: ChannelCredentialsReply,
        request: SendRequest,
        *,
        before_write: Callable[[], Awaitable[None]],
    ) -> SendResult:
        """``before_write`` is awaited right before the request goes on the wire (the pace
        gate); not at all if the call fails before that."""
        ...


class PaceSlot(Protocol):
    async def commit(self) -> None:
        """Right before the provider call: wait until the pace lets it start, account it."""
        ...

    def release(self) -> None:
        """Give the slot back unused (harmless after ``commit``)."""
        ...


class Pacer(Protocol):
    """A channel's pace, shared by every lane of the channel."""

    async def acquire(self, *, priority: int, counts_toward_cap: bool) -> PaceSlot:
        """Reserve a slot for one more provider call (the daily cap counts it now)."""
        ...

    def rate_limited(self, retry_after: float | None) -> None:
        """The provider said the channel sends too fast."""
        ...


class Guard(Protocol):
    """Marks the section between recording an attempt and recording its outcome.

    ``critical()`` raises ``Stopping`` when the partition is being released, so no new provider
    call starts; a task inside the section is never cancelled while the partition stops.
    """

    def critical(self) -> AbstractContextManager[None]: ...

    @property
    def active(self) -> bool:
        """Not stopping, and the partition's lease still holds (the fencing check)."""
        ...


class Stopping(Exception):
    """The partition is being released: leave the message unacknowledged for the next owner."""


class StatusWatch(Protocol):
    """Provider statuses that name one in-doubt message by our id (``MessageStatusChanged`` with
    ``client_message_id``, from ingest), while the watch is open."""

    async def named(self, timeout_s: float) -> str | None:
        """Wait up to ``timeout_s`` for a status naming the message; its provider id, or None."""
        ...

    def heard_since(self, at: datetime) -> bool:
        """A status of the channel reported by the provider at or after ``at`` arrived."""
        ...


class ProviderStatuses(Protocol):
    def watch(
        self, tenant_id: str, channel_id: str, message_id: UUID, *, since: datetime
    ) -> AbstractAsyncContextManager[StatusWatch]:
        """Watch statuses published from ``since`` (the call's start) on, until closed."""
        ...


class Publish(Protocol):
    """``zapflow.runtime.broker.Publisher``: JetStream publish with ``Nats-Msg-Id`` = event id."""

    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> PubAck: ...
