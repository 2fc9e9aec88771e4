"""Send outcomes of stored outbound messages, inside the ingest-outbound transaction.

A veto or a send outcome moves an outbound message's status forward (``status_advances``); a
``SendSucceeded`` links the provider's message id, and receipts that waited for that id
(``message_status_history`` rows with ``message_id`` NULL) are applied through ``pg_timeline``.
Outcomes for a message not recorded yet are parked in ``outbound_pending_outcomes`` and applied
by :meth:`Outcomes.apply_parked` when it is, so the order of a message's send events does not
matter; receipts that named it by our id before (Meta ``biz_opaque_callback_data``) link their
provider id then (:meth:`Outcomes.adopt_echoed`). If ingest-raw stored the provider's echo of
the message before the link, the echo is folded into it (its receipts wait again and are
applied with the link, its media moves over).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final
from uuid import UUID

import asyncpg

from zapflow.contracts.common import SendOrigin
from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import PermanentError
from zapflow.contracts.model import DeliveryStatus, status_advances
from zapflow.contracts.sending.v1 import SendFailed, SendSucceeded
from zapflow.ingest import events
from zapflow.ingest.adapters import pgjson
from zapflow.ingest.adapters.pg_timeline import Timeline
from zapflow.ingest.adapters.pglocks import lock_key
from zapflow.ingest.adapters.pgretry import Race
from zapflow.ingest.adapters.pgtypes import Conn
from zapflow.ingest.events import Campaign, SendCause
from zapflow.ingest.outbound import (
    SEND_EVENTS,
    Outcome,
    OutcomeEvent,
    message_id_of,
    outcome_of,
)

logger = logging.getLogger(__name__)

_MESSAGE: Final = """
SELECT id, tenant_id, conversation_id, provider_message_id, status, origin, campaign_id,
  recipient_id
FROM messages WHERE id = $1
FOR NO KEY UPDATE
"""
_SET_OUTCOME: Final = """
UPDATE messages SET status = $2, status_at = $3, status_reason = $4, error_code = $5,
  error_text = $6
WHERE id = $1
"""
_HOLDER: Final = """
SELECT id, tenant_id, origin, from_me FROM messages
WHERE channel_id = $1 AND provider_message_id = $2
FOR UPDATE
"""
# The provider's echo of our own message (stored by ingest-raw before SendSucceeded named its
# id) folds into the outbound message: its receipts wait again for the link, its media job and
# file move over, and the echo row goes.
_ABSORB_ECHO: Final = """
WITH receipts AS (
  UPDATE message_status_history SET message_id = NULL, applied = false
  WHERE message_id = $1 RETURNING id
), jobs AS (
  UPDATE media_jobs SET message_id = $2 WHERE message_id = $1 RETURNING message_id
), files AS (
  UPDATE media SET message_id = $2 WHERE message_id = $1 RETURNING message_id
)
DELETE FROM messages WHERE id = $1
"""
_LINK: Final = "UPDATE messages SET provider_message_id = $2 WHERE id = $1"
_PARK: Final = """
INSERT INTO outbound_pending_outcomes
  (message_id, event_id, tenant_id, provider_message_id, type, payload)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
"""
PARKED_PROVIDER_IDS: Final = """
SELECT provider_message_id FROM outbound_pending_outcomes
WHERE message_id = $1 AND provider_message_id IS NOT NULL
"""
# receipts that named the message by the id we sent with it before the message was recorded
ECHOED_PROVIDER_IDS: Final = """
SELECT DISTINCT provider_message_id FROM message_status_history
WHERE client_message_id = $1 AND channel_id = $2 AND tenant_id = $3 AND message_id IS NULL
ORDER BY provider_message_id
"""
_TAKE_PARKED: Final = """
DELETE FROM outbound_pending_outcomes WHERE message_id = $1 AND tenant_id = $2
RETURNING payload
"""


def _is_echo(row: asyncpg.Record, tenant_id: str) -> bool:
    """A message ingest-raw stored from the provider's copy of one the business sent, not one
    of our own outbound messages (those have an origin)."""
    return bool(row["tenant_id"] == tenant_id and row["from_me"] and row["origin"] is None)


class MessageIdTaken(PermanentError):
    """The request's message id names another tenant's message."""


@dataclass(frozen=True)
class Outbound:
    """A stored outbound message as a send event finds it."""

    id: UUID
    conversation_id: UUID
    provider_message_id: str | None
    status: DeliveryStatus | None
    campaign: Campaign


class Outcomes:
    """Outcomes of one send event's transaction; appends the events to publish to ``out``.

    ``locked`` are the advisory lock keys the transaction holds: linking a provider id needs
    its ``(channel, provider id)`` key, or another transaction could apply receipts meanwhile.
    """

    def __init__(
        self, conn: Conn, cause: SendCause, locked: frozenset[int], out: list[Event]
    ) -> None:
        self.conn = conn
        self.cause = cause
        self.locked = locked
        self.timeline = Timeline(conn, cause)
        self.events = out

    async def settle(self, message: Outbound, outcome: Outcome, key: str) -> None:
        """Link the provider id, move the status forward, then apply receipts that waited."""
        linked = await self._link(message, outcome.provider_message_id)
        if status_advances(message.status, outcome.status):
            await self.conn.execute(
                _SET_OUTCOME,
                message.id,
                outcome.status.value,
                outcome.at,
                outcome.reason,
                pgjson.text(outcome.error_code),
                pgjson.text(outcome.error_text),
            )
            self.events.append(
                events.status_changed(
                    self.cause,
                    key,
                    message_id=message.id,
                    provider_message_id=linked or message.provider_message_id,
                    conversation_id=message.conversation_id,
                    status=outcome.status,
                    previous=message.status,
                    at=outcome.at,
                    error_code=outcome.error_code,
                    error_text=outcome.error_text,
                    campaign=message.campaign,
                )
            )
        if linked is not None:
            self.events += await self.timeline.apply_pending(f"{key}/receipts", linked)

    async def _link(self, message: Outbound, provider_message_id: str | None) -> str | None:
        """Set the provider id on a message that has none; returns it when it was set now."""
        if provider_message_id is None or message.provider_message_id is not None:
            return None
        channel = self.cause.channel_id
        if lock_key(channel, provider_message_id) not in self.locked:
            raise Race("provider id not locked")  # parked after the keys were read: run again
        holder = await self.conn.fetchrow(_HOLDER, channel, provider_message_id)
        if holder is not None:
            if not _is_echo(holder, self.cause.tenant_id):
                logger.error(
                    "provider id already names another message",
                    extra={"message_id": str(message.id), "other_id": str(holder["id"])},
                )
                return None
            await self.conn.execute(_ABSORB_ECHO, holder["id"], message.id)
        await self.conn.execute(_LINK, message.id, provider_message_id)
        return provider_message_id

    async def park(self, evt: OutcomeEvent) -> None:
        """Keep an outcome whose message is not recorded yet (applied by ``apply_parked``)."""
        await self.conn.execute(
            _PARK,
            message_id_of(evt),
            evt.id,
            self.cause.tenant_id,
            outcome_of(evt).provider_message_id,
            evt.type,
            evt.model_dump_json(),
        )

    async def apply_parked(self, message_id: UUID) -> None:
        """Apply, in time order, the outcomes parked for the message just recorded."""
        rows = await self.conn.fetch(_TAKE_PARKED, message_id, self.cause.tenant_id)
        parked = [SEND_EVENTS.validate_json(r["payload"]) for r in rows]
        outcomes = sorted(
            (outcome_of(e) for e in parked if isinstance(e, SendSucceeded | SendFailed)),
            key=lambda o: (o.at, o.status.value),
        )
        for n, outcome in enumerate(outcomes):
            message = await self.load(message_id)
            assert message is not None, "parked outcomes are applied right after the insert"
            await self.settle(message, outcome, f"parked/{n}")

    async def adopt_echoed(self, message_id: UUID) -> None:
        """Receipts that named the message just recorded by our id (the provider echoes it)
        link their provider id to it, when no outcome linked one, and are applied."""
        message = await self.load(message_id)
        if message is None or message.provider_message_id is not None:
            return
        rows = await self.conn.fetch(
            ECHOED_PROVIDER_IDS, str(message_id), self.cause.channel_id, self.cause.tenant_id
        )
        if not rows:
            return
        # one provider id per message: more than one would be a duplicate send of ours
        linked = await self._link(message, rows[0]["provider_message_id"])
        if linked is not None:
            self.events += await self.timeline.apply_pending("echoed", linked)

    async def load(self, message_id: UUID) -> Outbound | None:
        """The message, row-locked; None when not recorded yet."""
        row = await self.conn.fetchrow(_MESSAGE, message_id)
        if row is None:
            return None
        if row["tenant_id"] != self.cause.tenant_id:
            raise MessageIdTaken("message id belongs to another tenant", code="message_id_taken")
        return Outbound(
            id=row["id"],
            conversation_id=row["conversation_id"],
            provider_message_id=row["provider_message_id"],
            status=DeliveryStatus(row["status"]) if row["status"] else None,
            campaign=Campaign(
                SendOrigin(row["origin"]) if row["origin"] else None,
                row["campaign_id"],
                row["recipient_id"],
            ),
        )
