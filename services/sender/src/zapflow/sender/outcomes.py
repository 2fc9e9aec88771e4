"""The events that end a send: ``SendSucceeded`` / ``SendFailed``, from the attempt record.

Event ids are derived from the message id (and, for a failure, the attempt count), so the
redelivery of a message republishes the *same* event: JetStream de-duplicates it within the
stream's window, consumers by event id beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID, uuid5

from zapflow.contracts.errors import ProcessingError
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.sending.v1 import FailureReason, SendFailed, SendSucceeded
from zapflow.contracts.subjects import subject_for
from zapflow.sender.domain import AttemptRecord
from zapflow.sender.errors import InDoubtError, RetriesExhaustedError
from zapflow.sender.ports import Publish

EVENT_NAMESPACE: Final = UUID("6f1c3b1e-5d0a-4f7e-9a51-3c2b7d9e8a10")
"""Namespace of the sender's deterministic event ids."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Done: acknowledge the message."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Given up: write a dead-letter record (``attempts`` provider calls), then terminate."""

    error: ProcessingError
    attempts: int


Outcome = Ack | DeadLetter


async def publish_sent(
    publish: Publish, approved: SendApproved, record: AttemptRecord, at: datetime
) -> None:
    request = approved.request
    event = SendSucceeded(
        id=uuid5(EVENT_NAMESPACE, f"sent:{request.message_id}"),
        tenant_id=approved.tenant_id,
        correlation_id=approved.correlation_id,
        causation_id=approved.id,
        message_id=request.message_id,
        channel_id=request.channel_id,
        provider=record.provider,
        provider_message_id=record.provider_message_id or "",
        attempts=max(1, record.attempts),
        sent_at=at,
    )
    await publish(subject_for(event), event)


async def publish_failed(
    publish: Publish, approved: SendApproved, record: AttemptRecord, at: datetime
) -> Outcome:
    """SendFailed from the record; exhausted or in-doubt failures also go to the DLQ."""
    request = approved.request
    attempts = max(1, record.attempts)
    event = SendFailed(
        id=uuid5(EVENT_NAMESPACE, f"failed:{request.message_id}:{record.attempts}"),
        tenant_id=approved.tenant_id,
        correlation_id=approved.correlation_id,
        causation_id=approved.id,
        message_id=request.message_id,
        channel_id=request.channel_id,
        provider=record.provider,
        reason=FailureReason(record.reason or FailureReason.UNKNOWN.value),
        permanent=bool(record.permanent),
        error_code=record.error_code,
        error_text=record.error_text,
        attempts=attempts,
        failed_at=at,
    )
    await publish(subject_for(event), event)
    if record.permanent:
        return Ack()
    error: ProcessingError = (
        InDoubtError(record.attempts)
        if record.error_code == InDoubtError.CODE
        else RetriesExhaustedError(attempts, record.error_code, record.error_text or "")
    )
    return DeadLetter(error, attempts)
