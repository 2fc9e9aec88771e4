"""The outbox: events a consumer's transaction produced, stored with it and republished on
redelivery (same ids, so JetStream drops them), and the inbox claim that goes with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from uuid import UUID

import asyncpg

from zapflow.contracts.envelope import Event
from zapflow.contracts.registry import parse_event
from zapflow.contracts.subjects import subject_for

CLAIM_WITH_OUTBOX: Final = """
WITH claim AS (
  INSERT INTO processed_events (event_id, consumer) VALUES ($1, $2)
  ON CONFLICT (event_id) DO NOTHING
  RETURNING event_id
), outbox_rows AS (
  INSERT INTO outbox (source_event_id, seq, event_id, subject, type, payload)
  SELECT $1, u.seq, u.event_id, u.subject, u.type, u.payload
  FROM claim, unnest($3::int[], $4::uuid[], $5::text[], $6::text[], $7::text[])
    AS u(seq, event_id, subject, type, payload)
  RETURNING seq
)
SELECT count(*) FROM claim
"""
"""Claim the inbox row of ``$1`` for consumer ``$2`` and write the outbox (``columns``); the
count is 0 when the input was claimed before (roll back and republish its outbox instead)."""

_READ: Final = "SELECT type, payload FROM outbox WHERE source_event_id = $1 ORDER BY seq"


def columns(
    events: Sequence[Event],
) -> tuple[list[int], list[UUID], list[str], list[str], list[str]]:
    """The outbox rows of ``events`` as parallel arrays (seq, id, subject, type, payload)."""
    return (
        list(range(len(events))),
        [e.id for e in events],
        [subject_for(e) for e in events],
        [e.type for e in events],
        [e.model_dump_json() for e in events],
    )


async def read(pool: asyncpg.Pool, source_event_id: UUID) -> list[Event]:
    """The events an earlier run of ``source_event_id`` wrote, in order."""
    rows = await pool.fetch(_READ, source_event_id)
    return [parse_event(r["type"], r["payload"]) for r in rows]
