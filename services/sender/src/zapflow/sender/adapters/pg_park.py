"""``parked_sends`` in PostgreSQL: the ``ParkStore`` port (see ``zapflow.sender.parking``).

Parking is one ``INSERT … SELECT FROM unnest(…) ON CONFLICT (message_id) DO NOTHING`` per fetched
batch (a redelivered message that was parked before the crash adds nothing); feeding reads a
channel's next rows by stream sequence; a settled message's row is deleted, the deletes of
concurrent settles coalesced into one statement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final
from uuid import UUID

import asyncpg

from zapflow.sender.coalesce import Coalescer
from zapflow.sender.ports import Backlog, ParkedSend

_PARK: Final = """
INSERT INTO parked_sends (message_id, tenant_id, channel_id, partition, seq, subject, headers,
    payload)
SELECT m, t, c, p, s, j, h::jsonb, b
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[], $7::text[],
    $8::bytea[]) AS v(m, t, c, p, s, j, h, b)
ON CONFLICT (message_id) DO NOTHING
"""
_BACKLOG: Final = """
SELECT tenant_id, channel_id, count(*) AS parked, min(seq) AS first_seq, max(seq) AS last_seq
FROM parked_sends WHERE partition = $1 GROUP BY tenant_id, channel_id
"""
_NEXT: Final = """
SELECT message_id, tenant_id, channel_id, partition, seq, subject, headers::text AS headers,
    payload
FROM parked_sends
WHERE tenant_id = $1 AND channel_id = $2 AND seq > $3 AND seq <= $4
ORDER BY seq LIMIT $5
"""
_REMOVE_MANY: Final = "DELETE FROM parked_sends WHERE message_id = ANY($1::uuid[])"


class PgParkStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._removes: Coalescer[UUID, None, bool] = Coalescer(self._remove_many)

    async def park(self, sends: Sequence[ParkedSend]) -> None:
        rows = sorted(sends, key=lambda p: p.message_id)
        await self._pool.execute(
            _PARK,
            [p.message_id for p in rows],
            [p.tenant_id for p in rows],
            [p.channel_id for p in rows],
            [p.partition for p in rows],
            [p.seq for p in rows],
            [p.subject for p in rows],
            [json.dumps(p.headers) for p in rows],
            [p.payload for p in rows],
        )

    async def backlog(self, partition: int) -> dict[tuple[str, str], Backlog]:
        rows = await self._pool.fetch(_BACKLOG, partition)
        return {
            (r["tenant_id"], r["channel_id"]): Backlog(r["parked"], r["first_seq"], r["last_seq"])
            for r in rows
        }

    async def next(
        self, tenant_id: str, channel_id: str, *, after_seq: int, through_seq: int, limit: int
    ) -> list[ParkedSend]:
        rows = await self._pool.fetch(_NEXT, tenant_id, channel_id, after_seq, through_seq, limit)
        return [
            ParkedSend(
                message_id=r["message_id"],
                tenant_id=r["tenant_id"],
                channel_id=r["channel_id"],
                partition=r["partition"],
                seq=r["seq"],
                subject=r["subject"],
                headers=json.loads(r["headers"]),
                payload=bytes(r["payload"]),
            )
            for r in rows
        ]

    async def remove(self, message_id: UUID) -> None:
        await self._removes.submit(message_id, None)

    async def _remove_many(self, batch: Sequence[tuple[UUID, None]]) -> dict[UUID, bool]:
        ids = sorted(message_id for message_id, _ in batch)
        await self._pool.execute(_REMOVE_MANY, ids)
        return dict.fromkeys(ids, True)
