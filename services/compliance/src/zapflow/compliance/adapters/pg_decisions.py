"""SQL for deciding: decisions, usage counters, deferred sends and the outbox."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from zapflow.compliance.adapters._sql import DECISION_COLUMNS, Conn, decision_from, inserted
from zapflow.compliance.ports import StoredDecision, Usage
from zapflow.contracts.envelope import Event


class DecisionsSql:
    """Half of ``PgUnit``: what deciding reads and writes."""

    _c: Conn

    async def lock_channel(self, tenant_id: str, channel_id: str) -> None:
        await self._c.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{tenant_id}/{channel_id}"
        )

    async def decision(self, message_id: UUID) -> StoredDecision | None:
        row = await self._c.fetchrow(
            f"SELECT {DECISION_COLUMNS} FROM decisions WHERE message_id = $1 FOR UPDATE",
            message_id,
        )
        return None if row is None else decision_from(row)

    async def save_decision(self, decision: StoredDecision) -> None:
        d = decision
        await self._c.execute(
            f"""
            INSERT INTO decisions ({DECISION_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            ON CONFLICT (message_id) DO UPDATE SET
                decision_id = excluded.decision_id, seq = excluded.seq,
                outcome = excluded.outcome, reason = excluded.reason, text = excluded.text,
                until = excluded.until, decided_at = excluded.decided_at
            """,
            d.message_id,
            d.tenant_id,
            d.channel_id,
            d.decision_id,
            d.seq,
            d.outcome.value,
            d.reason,
            d.text,
            d.until,
            d.decided_at,
            d.request.model_dump_json(),
            d.request_event_id,
            d.correlation_id,
        )

    async def usage(
        self, tenant_id: str, channel_id: str, day: date, address: str, fingerprint: str
    ) -> Usage:
        row = await self._c.fetchrow(
            """
            SELECT
              (SELECT recipients FROM daily_counters
                WHERE tenant_id = $1 AND channel_id = $2 AND local_date = $3) AS recipients,
              EXISTS (SELECT 1 FROM daily_recipients WHERE tenant_id = $1 AND channel_id = $2
                AND local_date = $3 AND address = $4) AS counted,
              (SELECT last_at FROM content_sends WHERE tenant_id = $1 AND channel_id = $2
                AND address = $4 AND fingerprint = $5) AS last_at
            """,
            tenant_id,
            channel_id,
            day,
            address,
            fingerprint,
        )
        assert row is not None
        return Usage(row["recipients"] or 0, row["counted"], row["last_at"])

    async def record_send(
        self,
        tenant_id: str,
        channel_id: str,
        day: date,
        address: str,
        fingerprint: str,
        at: datetime,
        *,
        new_recipient: bool,
    ) -> None:
        await self._c.execute(
            """
            INSERT INTO content_sends AS s (tenant_id, channel_id, address, fingerprint, last_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id, channel_id, address, fingerprint) DO UPDATE
                SET last_at = GREATEST(s.last_at, excluded.last_at)
            """,
            tenant_id,
            channel_id,
            address,
            fingerprint,
            at,
        )
        if new_recipient and inserted(
            await self._c.execute(
                "INSERT INTO daily_recipients (tenant_id, channel_id, local_date, address)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                tenant_id,
                channel_id,
                day,
                address,
            )
        ):
            await self._c.execute(
                "INSERT INTO daily_counters AS d (tenant_id, channel_id, local_date, recipients)"
                " VALUES ($1, $2, $3, 1) ON CONFLICT (tenant_id, channel_id, local_date)"
                " DO UPDATE SET recipients = d.recipients + 1",
                tenant_id,
                channel_id,
                day,
            )

    async def defer(self, decision: StoredDecision) -> None:
        await self._c.execute(
            """
            INSERT INTO deferred_sends (message_id, tenant_id, channel_id, campaign_id, due_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (message_id) DO UPDATE SET due_at = excluded.due_at
            """,
            decision.message_id,
            decision.tenant_id,
            decision.channel_id,
            decision.request.campaign_id,
            decision.until,
        )

    async def take_deferred(self, message_id: UUID, now: datetime) -> bool:
        taken = await self._c.fetchval(
            """
            DELETE FROM deferred_sends WHERE message_id = (
                SELECT message_id FROM deferred_sends
                WHERE message_id = $1 AND due_at <= $2 FOR UPDATE SKIP LOCKED)
            RETURNING message_id
            """,
            message_id,
            now,
        )
        return taken is not None

    async def enqueue(self, caused_by: str, subject: str, event: Event) -> None:
        await self._c.execute(
            "INSERT INTO outbox (event_id, caused_by, subject, type, payload)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
            event.id,
            caused_by,
            subject,
            event.type,
            event.model_dump_json(),
        )
