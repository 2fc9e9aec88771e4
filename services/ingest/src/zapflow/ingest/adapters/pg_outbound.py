"""The ingest-outbound transaction: one send event, its effects, inbox row and outbox.

The transaction opens with the advisory locks of the message (every send event about it) and,
when a provider id may get linked, of ``(channel, provider id)`` (the key ingest-raw takes for
receipts), so a receipt racing the link is either waiting when the link applies it or finds the
message linked. The inbox claim (``processed_events``) comes last: a send event processed
before rolls back and its stored outbox is republished instead. Unique-key races on contacts
and conversations retry the whole transaction (``pgretry``).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import SendRequested, SendSucceeded, SendVetoed
from zapflow.ingest.adapters import pgoutbox
from zapflow.ingest.adapters.pg_outcomes import ECHOED_PROVIDER_IDS, PARKED_PROVIDER_IDS
from zapflow.ingest.adapters.pg_sends import SendRun
from zapflow.ingest.adapters.pglocks import lock_key, locked_transaction, message_lock_key
from zapflow.ingest.adapters.pgretry import retrying
from zapflow.ingest.adapters.pgtypes import Conn
from zapflow.ingest.events import SendCause
from zapflow.ingest.outbound import SendEvent, channel_of, message_id_of


class _SeenBefore(Exception):
    """The send event's inbox row exists: roll back and republish its outbox instead."""


class PgOutboundStore:
    """:class:`zapflow.ingest.ports.OutboundStore` on an asyncpg pool (search_path = ingest)."""

    def __init__(self, pool: asyncpg.Pool, consumer: str, *, attempts: int = 4) -> None:
        self._pool = pool
        self._consumer = consumer
        self._attempts = attempts

    async def record(self, evt: SendEvent) -> list[Event] | None:
        return await retrying(
            lambda: self._record_once(evt), attempts=self._attempts, event_id=evt.id
        )

    async def _record_once(self, evt: SendEvent) -> list[Event] | None:
        try:
            async with self._pool.acquire() as conn:
                keys = await _lock_keys(conn, evt)
                async with locked_transaction(conn, channel_of(evt), keys):
                    run = SendRun(conn, SendCause.of(evt), frozenset(keys))
                    await run.apply(evt)
                    claimed = await conn.fetchval(
                        pgoutbox.CLAIM_WITH_OUTBOX,
                        evt.id,
                        self._consumer,
                        *pgoutbox.columns(run.events),
                    )
                    if not claimed:
                        raise _SeenBefore  # roll back: this send event was processed already
                    return run.events
        except _SeenBefore:
            return None

    async def outbox(self, source_event_id: UUID) -> list[Event]:
        return await pgoutbox.read(self._pool, source_event_id)


async def _lock_keys(conn: Conn, evt: SendEvent) -> list[int]:
    """The message's key, and ``(channel, provider id)`` for every id the event may link: its
    own (a success), or those of successes parked for, and of receipts that named, the message
    it records. One parked after this read makes ``SendRun`` raise ``Race``, and the transaction
    runs again."""
    message_id, channel = message_id_of(evt), channel_of(evt)
    keys = [message_lock_key(message_id)]
    if isinstance(evt, SendSucceeded):
        if evt.provider_message_id:
            keys.append(lock_key(channel, evt.provider_message_id))
    elif isinstance(evt, SendRequested | SendVetoed):
        rows = await conn.fetch(PARKED_PROVIDER_IDS, message_id)
        rows += await conn.fetch(ECHOED_PROVIDER_IDS, str(message_id), channel, evt.tenant_id)
        keys += [lock_key(channel, r["provider_message_id"]) for r in rows]
    return keys
