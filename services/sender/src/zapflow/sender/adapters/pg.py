"""``send_attempts`` and ``pace_state`` in PostgreSQL (the pool's search_path is ``sender``).

Every write is one statement in autocommit: the row is the only state, and each transition is
guarded by the state it expects, so two owners racing on one message (a hand-over while a call
was in flight) cannot move a message backwards or overwrite ``accepted``.

The two writes every send makes, ``begin`` (before the call) and ``record_accepted`` (after it),
are coalesced (:class:`~zapflow.sender.coalesce.Coalescer`): the ones made while earlier ones are
in the database go together in one ``… unnest(…)`` statement, and each caller returns only once
the statement holding its row committed. Under load that is one round trip for dozens of sends
instead of one each; alone, a write goes at once.

The store keeps no session state, so its pool is opened with ``session_state=False``
(``zapflow.runtime.db.create_pool``): no reset query, which was a second round trip for every
statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final
from uuid import UUID

import asyncpg

from zapflow.sender.coalesce import Coalescer
from zapflow.sender.domain import AttemptRecord, State
from zapflow.sender.ports import NewAttempt

_COLUMNS: Final = """message_id, state, attempts, provider, rate_limited, provider_message_id,
    reason, permanent, error_code, error_text, replay_of,
    extract(epoch FROM now() - last_attempt_at)::float8 AS since_last,
    extract(epoch FROM now() - first_attempt_at)::float8 AS since_first"""


_BEGIN_MANY: Final = (
    """INSERT INTO send_attempts (message_id, tenant_id, channel_id, provider,
    state, attempts, local_day, replay_of)
    SELECT m, t, c, p, 'sending', 1, d, r
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::date[], $6::uuid[])
        AS v(m, t, c, p, d, r)
    ON CONFLICT (message_id) DO NOTHING RETURNING """
    + _COLUMNS
)
_ACCEPTED_MANY: Final = (
    """UPDATE send_attempts SET state = 'accepted',
    provider_message_id = v.pid, finished_at = now()
    FROM unnest($1::uuid[], $2::text[]) AS v(id, pid)
    WHERE message_id = v.id AND state <> 'accepted' RETURNING """
    + _COLUMNS
)


def _record(row: asyncpg.Record) -> AttemptRecord:
    return AttemptRecord(
        message_id=row["message_id"],
        state=State(row["state"]),
        attempts=row["attempts"],
        provider=row["provider"],
        rate_limited=row["rate_limited"],
        provider_message_id=row["provider_message_id"],
        reason=row["reason"],
        permanent=row["permanent"],
        error_code=row["error_code"],
        error_text=row["error_text"],
        replay_of=row["replay_of"],
        since_last_attempt_s=row["since_last"],
        since_first_attempt_s=row["since_first"],
    )


class PgAttemptStore:
    """The ``AttemptStore`` port over an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, *, max_in_flight: int = 2) -> None:
        self._pool = pool
        self._begins: Coalescer[UUID, NewAttempt, AttemptRecord] = Coalescer(
            self._begin_many, max_in_flight=max_in_flight
        )
        self._accepts: Coalescer[UUID, str, AttemptRecord] = Coalescer(
            self._accepted_many, max_in_flight=max_in_flight
        )

    async def lookup(self, message_ids: Sequence[UUID]) -> dict[UUID, AttemptRecord]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM send_attempts WHERE message_id = ANY($1::uuid[])",
            list(message_ids),
        )
        return {row["message_id"]: _record(row) for row in rows}

    async def get(self, message_id: UUID) -> AttemptRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM send_attempts WHERE message_id = $1", message_id
        )
        return None if row is None else _record(row)

    async def begin(self, attempt: NewAttempt) -> AttemptRecord | None:
        return await self._begins.submit(attempt.message_id, attempt)

    async def _begin_many(
        self, batch: Sequence[tuple[UUID, NewAttempt]]
    ) -> dict[UUID, AttemptRecord]:
        attempts = sorted((attempt for _, attempt in batch), key=lambda a: a.message_id)
        rows = await self._pool.fetch(
            _BEGIN_MANY,
            [a.message_id for a in attempts],
            [a.tenant_id for a in attempts],
            [a.channel_id for a in attempts],
            [a.provider for a in attempts],
            [a.local_day for a in attempts],
            [a.replay_of for a in attempts],
        )
        return {row["message_id"]: _record(row) for row in rows}

    async def next_attempt(self, message_id: UUID, *, expected: State) -> AttemptRecord | None:
        if expected not in (State.RETRYING, State.SENDING):
            return None
        row = await self._pool.fetchrow(
            "UPDATE send_attempts SET state = 'sending', attempts = attempts + 1,"
            " last_attempt_at = now() WHERE message_id = $1 AND state = $2"
            f" RETURNING {_COLUMNS}",
            message_id,
            expected.value,
        )
        return None if row is None else _record(row)

    async def record_accepted(self, message_id: UUID, provider_message_id: str) -> AttemptRecord:
        # also over 'failed': a new owner may have given the call up as in doubt meanwhile,
        # but the provider's answer is the truth
        record = await self._accepts.submit(message_id, provider_message_id)
        return record if record is not None else await self._existing(message_id)

    async def _accepted_many(self, batch: Sequence[tuple[UUID, str]]) -> dict[UUID, AttemptRecord]:
        ordered = sorted(batch)  # rows locked in one order: batches cannot deadlock
        rows = await self._pool.fetch(
            _ACCEPTED_MANY,
            [message_id for message_id, _ in ordered],
            [provider_message_id for _, provider_message_id in ordered],
        )
        return {row["message_id"]: _record(row) for row in rows}

    async def record_retry(
        self, message_id: UUID, *, rate_limited: bool, code: str | None, text: str
    ) -> AttemptRecord:
        row = await self._pool.fetchrow(
            "UPDATE send_attempts SET state = 'retrying', rate_limited = rate_limited + $2,"
            " error_code = $3, error_text = $4 WHERE message_id = $1 AND state = 'sending'"
            f" RETURNING {_COLUMNS}",
            message_id,
            int(rate_limited),
            code,
            text[:500],
        )
        return _record(row) if row is not None else await self._existing(message_id)

    async def record_failed(
        self,
        attempt: NewAttempt,
        *,
        reason: str,
        permanent: bool,
        code: str | None,
        text: str,
    ) -> AttemptRecord:
        row = await self._pool.fetchrow(
            "INSERT INTO send_attempts AS a (message_id, tenant_id, channel_id, provider, state,"
            " local_day, replay_of, reason, permanent, error_code, error_text, finished_at)"
            " VALUES ($1, $2, $3, $4, 'failed', $5, $6, $7, $8, $9, $10, now())"
            " ON CONFLICT (message_id) DO UPDATE SET state = 'failed', reason = $7,"
            " permanent = $8, error_code = $9, error_text = $10, finished_at = now()"
            f" WHERE a.state <> 'accepted' RETURNING {_COLUMNS}",
            attempt.message_id,
            attempt.tenant_id,
            attempt.channel_id,
            attempt.provider,
            attempt.local_day,
            attempt.replay_of,
            reason,
            permanent,
            code,
            text[:500],
        )
        return _record(row) if row is not None else await self._existing(attempt.message_id)

    async def reset_for_replay(self, message_id: UUID, replay_of: UUID) -> None:
        await self._pool.execute(
            "UPDATE send_attempts SET state = 'retrying', attempts = 0, rate_limited = 0,"
            " replay_of = $2, reason = NULL, permanent = NULL, error_code = NULL,"
            " error_text = NULL, first_attempt_at = now(), finished_at = NULL"
            " WHERE message_id = $1 AND state = 'failed'",
            message_id,
            replay_of,
        )

    async def daily_count(self, tenant_id: str, channel_id: str, day: date) -> int:
        count = await self._pool.fetchval(
            "SELECT count(*) FROM send_attempts"
            " WHERE tenant_id = $1 AND channel_id = $2 AND local_day = $3 AND attempts > 0",
            tenant_id,
            channel_id,
            day,
        )
        return int(count or 0)

    async def pace_factor(self, tenant_id: str, channel_id: str) -> float | None:
        value = await self._pool.fetchval(
            "SELECT rate_factor FROM pace_state WHERE tenant_id = $1 AND channel_id = $2",
            tenant_id,
            channel_id,
        )
        return None if value is None else float(value)

    async def save_pace_factor(self, tenant_id: str, channel_id: str, factor: float) -> None:
        await self._pool.execute(
            "INSERT INTO pace_state (tenant_id, channel_id, rate_factor) VALUES ($1, $2, $3)"
            " ON CONFLICT (tenant_id, channel_id) DO UPDATE"
            " SET rate_factor = excluded.rate_factor, updated_at = now()",
            tenant_id,
            channel_id,
            min(1.0, max(factor, 1e-6)),
        )

    async def _existing(self, message_id: UUID) -> AttemptRecord:
        record = await self.get(message_id)
        if record is None:
            raise LookupError(f"send attempt {message_id} vanished")
        return record
