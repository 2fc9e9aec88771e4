"""The ingest-raw transaction: one raw webhook, everything it carries, in PostgreSQL.

One transaction holds the inbox row (``processed_events``, the durable idempotency key), the
contacts, conversations and messages, receipts/edits/revokes, media jobs, the ``webhook_log``
row and the ``outbox`` of events to publish. Messages are inserted with
``ON CONFLICT (channel_id, provider_message_id) DO NOTHING``: a duplicate webhook (a new raw id
for the same message) changes nothing and produces no event. Items about the same provider
message id are serialized by advisory locks taken with ``BEGIN`` (``pglocks``: a bounded number,
whatever the number of items); unique-key races
on contacts and conversations (another worker or replica created the row first) roll back and
retry the whole transaction.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID

import asyncpg

from zapflow.contracts.envelope import Event
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.ingest.adapters import pgjson, pgoutbox
from zapflow.ingest.adapters.pg_items import WebhookItems
from zapflow.ingest.adapters.pglocks import lock_key, locked_transaction, message_lock_key
from zapflow.ingest.adapters.pgretry import retrying
from zapflow.ingest.adapters.pgtypes import Conn
from zapflow.ingest.domain import echoed_message_id
from zapflow.ingest.ports import Ingested
from zapflow.providers import ParsedWebhook

_FINISH: Final = """
WITH claim AS (
  INSERT INTO processed_events (event_id, consumer) VALUES ($1, $2)
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id
), logged AS (
  INSERT INTO webhook_log
    (event_id, tenant_id, channel_id, provider, received_at, outcome, items, ignored, error,
     content_type, body)
  SELECT $1, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11 FROM claim
  ON CONFLICT (event_id) DO UPDATE SET
    outcome = EXCLUDED.outcome, items = EXCLUDED.items, ignored = EXCLUDED.ignored,
    error = NULL, processed_at = now()
  RETURNING event_id
), outbox_rows AS (
  INSERT INTO outbox (source_event_id, seq, event_id, subject, type, payload)
  SELECT $1, u.seq, u.event_id, u.subject, u.type, u.payload
  FROM claim, unnest($12::int[], $13::uuid[], $14::text[], $15::text[], $16::text[])
    AS u(seq, event_id, subject, type, payload)
  RETURNING seq
)
SELECT count(*) FROM claim
"""
_LOG_FAILURE: Final = """
INSERT INTO webhook_log
  (event_id, tenant_id, channel_id, provider, received_at, outcome, items, ignored, error,
   content_type, body)
VALUES ($1, $2, $3, $4, $5, 'failed', 0, '{}', $6, $7, $8)
ON CONFLICT (event_id) DO UPDATE SET outcome = 'failed', error = EXCLUDED.error,
  processed_at = now()
"""


class _SeenBefore(Exception):
    """The raw event's inbox row exists: roll back and republish its outbox instead."""


class PgIngestStore:
    """:class:`zapflow.ingest.ports.IngestStore` on an asyncpg pool (search_path = ingest)."""

    def __init__(self, pool: asyncpg.Pool, consumer: str, *, attempts: int = 4) -> None:
        self._pool = pool
        self._consumer = consumer
        self._attempts = attempts

    async def ingest(
        self, evt: WebhookReceived, body: bytes, parsed: ParsedWebhook
    ) -> Ingested | None:
        return await retrying(
            lambda: self._ingest_once(evt, body, parsed), attempts=self._attempts, event_id=evt.id
        )

    async def _ingest_once(
        self, evt: WebhookReceived, body: bytes, parsed: ParsedWebhook
    ) -> Ingested | None:
        try:
            keys = _lock_keys(evt.channel_id, parsed)
            async with (
                self._pool.acquire() as conn,
                locked_transaction(conn, evt.channel_id, keys),
            ):
                run = WebhookItems(conn, evt)
                await run.all(parsed)
                if not await self._finish(conn, evt, body, parsed, run):
                    raise _SeenBefore  # roll back: this raw event was processed already
                return Ingested(run.events, run.media_jobs)
        except _SeenBefore:
            return None

    async def _finish(
        self,
        conn: Conn,
        evt: WebhookReceived,
        body: bytes,
        parsed: ParsedWebhook,
        run: WebhookItems,
    ) -> bool:
        """Claim the inbox row, log the webhook and write the outbox; False if claimed before.

        The claim comes last so that the common case is a single round trip; a raw event seen
        before has done only no-ops by then (unique keys), and its transaction is rolled back.
        """
        items = sum(1 for _ in parsed.events())
        out = run.events
        claimed = await conn.fetchval(
            _FINISH,
            evt.id,
            self._consumer,
            evt.tenant_id,
            evt.channel_id,
            evt.provider,
            evt.received_at,
            "stored" if items else "ignored",
            items,
            [*parsed.ignored, *run.skipped],
            evt.content_type,
            body,
            *pgoutbox.columns(out),
        )
        return bool(claimed)

    async def outbox(self, source_event_id: UUID) -> list[Event]:
        return await pgoutbox.read(self._pool, source_event_id)

    async def record_failure(self, evt: WebhookReceived, body: bytes, error: str) -> None:
        await self._pool.execute(
            _LOG_FAILURE,
            evt.id,
            evt.tenant_id,
            evt.channel_id,
            evt.provider,
            evt.received_at,
            pgjson.text(error),
            evt.content_type,
            body,
        )


def _lock_keys(channel_id: str, parsed: ParsedWebhook) -> list[int]:
    """One lock per provider message id the webhook stores or changes (see ``pglocks``), and
    the lock of every outbound message a receipt names by our id (it may link its provider id,
    as a ``SendSucceeded`` would)."""
    ids_ = [
        *(m.provider_message_id for m in parsed.messages),
        *(s.provider_message_id for s in parsed.statuses),
        *(e.provider_message_id for e in parsed.edits),
        *(r.provider_message_id for r in parsed.revokes),
    ]
    echoed = (echoed_message_id(s.client_message_id) for s in parsed.statuses)
    return [lock_key(channel_id, i) for i in ids_] + [
        message_lock_key(m) for m in echoed if m is not None
    ]
