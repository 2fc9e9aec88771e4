"""SQL for deciding: decisions, usage counters, deferred sends and the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from uuid import UUID

from zapflow.compliance.adapters._sql import (
    CHANNEL_NAMES,
    DECISION_COLUMNS,
    Conn,
    PendingMarks,
    channel_from,
    consent_from,
    decision_from,
    inserted,
)
from zapflow.compliance.domain import Outcome, TenantRules
from zapflow.compliance.ports import ApprovedSend, DecisionFacts, StoredDecision, Usage
from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import SendRequest

# every read of deciding in one statement (after the channel lock, so it sees every decision
# the lock waited for); a scalar subquery or an aggregate per port method
_FACTS = f"""
SELECT
  EXISTS (SELECT 1 FROM decisions WHERE message_id = $3) AS decided,
  (SELECT rules FROM tenant_rules WHERE tenant_id = $1) AS rules,
  c.channel_id IS NOT NULL AS has_channel,
  {", ".join(f"c.{name}" for name in CHANNEL_NAMES)},
  k.consent_channels, k.consent_states, k.consent_sources, k.consent_times,
  (SELECT max(last_inbound_at) FROM service_windows
    WHERE tenant_id = $1 AND channel_id = $2 AND address = ANY($4::text[])) AS last_inbound_at,
  u.counter_days, u.counter_values,
  ARRAY(SELECT local_date FROM daily_recipients WHERE tenant_id = $1 AND channel_id = $2
    AND local_date = ANY($5::date[]) AND address = $6) AS counted_days,
  (SELECT last_at FROM content_sends WHERE tenant_id = $1 AND channel_id = $2
    AND address = $6 AND fingerprint = $7) AS last_same_content_at,
  $8::uuid IS NOT NULL AND EXISTS (SELECT 1 FROM cancelled_campaigns
    WHERE tenant_id = $1 AND campaign_id = $8::uuid) AS campaign_cancelled,
  EXISTS (SELECT 1 FROM confirmations
    WHERE message_id = $3 AND tenant_id = $1) AS is_confirmation
FROM (VALUES (1)) AS one
LEFT JOIN channels c ON c.tenant_id = $1 AND c.channel_id = $2
CROSS JOIN LATERAL (
  SELECT array_agg(channel_id) AS consent_channels, array_agg(state) AS consent_states,
         array_agg(source) AS consent_sources, array_agg(changed_at) AS consent_times
  FROM consents WHERE tenant_id = $1 AND address = ANY($4::text[])) k
CROSS JOIN LATERAL (
  SELECT array_agg(local_date) AS counter_days, array_agg(recipients) AS counter_values
  FROM daily_counters
  WHERE tenant_id = $1 AND channel_id = $2 AND local_date = ANY($5::date[])) u
"""

# save_decision, record_send, defer and enqueue as one statement: data-modifying CTEs all run
# (once) whether or not the final statement reads them; $16/$17/$20 switch the optional parts;
# ``marked`` writes the marks of events published since (``Store.mark_published_soon``)
_RECORD = f"""
WITH decision AS (
  INSERT INTO decisions ({DECISION_COLUMNS})
  VALUES ($1::uuid, $2::text, $3::text, $4, $5, $6, $7, $8, $9::timestamptz,
          $10::timestamptz, $11, $12, $13)
  ON CONFLICT (message_id) DO UPDATE SET
      decision_id = excluded.decision_id, seq = excluded.seq,
      outcome = excluded.outcome, reason = excluded.reason, text = excluded.text,
      until = excluded.until, decided_at = excluded.decided_at
), content AS (
  INSERT INTO content_sends AS s (tenant_id, channel_id, address, fingerprint, last_at)
  SELECT $2::text, $3::text, $14::text, $15::text, $10::timestamptz WHERE $16::boolean
  ON CONFLICT (tenant_id, channel_id, address, fingerprint) DO UPDATE
      SET last_at = GREATEST(s.last_at, excluded.last_at)
), recipient AS (
  INSERT INTO daily_recipients (tenant_id, channel_id, local_date, address)
  SELECT $2::text, $3::text, $18::date, $14::text WHERE $16::boolean AND $17::boolean
  ON CONFLICT DO NOTHING
  RETURNING 1
), counter AS (
  INSERT INTO daily_counters AS d (tenant_id, channel_id, local_date, recipients)
  SELECT $2::text, $3::text, $18::date, 1 FROM recipient
  ON CONFLICT (tenant_id, channel_id, local_date) DO UPDATE SET recipients = d.recipients + 1
), deferral AS (
  INSERT INTO deferred_sends (message_id, tenant_id, channel_id, campaign_id, due_at)
  SELECT $1::uuid, $2::text, $3::text, $19::uuid, $9::timestamptz WHERE $20::boolean
  ON CONFLICT (message_id) DO UPDATE SET due_at = excluded.due_at
), marked AS (
  UPDATE outbox SET published_at = $27::timestamptz WHERE event_id = ANY($26::uuid[])
)
INSERT INTO outbox (event_id, caused_by, subject, type, payload)
VALUES ($21, $22, $23, $24, $25) ON CONFLICT (event_id) DO NOTHING
"""


def _decision_row(d: StoredDecision) -> tuple[object, ...]:
    """A decision's values in ``DECISION_COLUMNS`` order ($1…$13 of both writes)."""
    return (
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


class DecisionsSql:
    """Half of ``PgUnit``: what deciding reads and writes."""

    _c: Conn
    _marks: PendingMarks
    _taken: list[tuple[list[UUID], datetime]]

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
            *_decision_row(d),
        )

    async def decision_facts(
        self,
        tenant_id: str,
        request: SendRequest,
        *,
        addresses: Sequence[str],
        days: Sequence[date],
        fingerprint: str,
    ) -> DecisionFacts:
        req = request
        r = await self._c.fetchrow(
            _FACTS,
            tenant_id,
            req.channel_id,
            req.message_id,
            list(addresses),
            list(days),
            req.to.address,
            fingerprint,
            req.campaign_id,
        )
        assert r is not None
        consents = zip(
            r["consent_channels"] or (),
            r["consent_states"] or (),
            r["consent_sources"] or (),
            r["consent_times"] or (),
            strict=True,
        )
        return DecisionFacts(
            decided=r["decided"],
            rules=TenantRules() if r["rules"] is None else TenantRules.load(r["rules"]),
            channel=channel_from(r) if r["has_channel"] else None,
            consents=[consent_from(*c) for c in consents],
            last_inbound_at=r["last_inbound_at"],
            recipients=dict(zip(r["counter_days"] or (), r["counter_values"] or (), strict=True)),
            counted_days=frozenset(r["counted_days"]),
            last_same_content_at=r["last_same_content_at"],
            campaign_cancelled=r["campaign_cancelled"],
            is_confirmation=r["is_confirmation"],
        )

    async def record_decision(
        self,
        decision: StoredDecision,
        send: ApprovedSend | None,
        *,
        caused_by: str,
        subject: str,
        event: Event,
    ) -> None:
        d = decision
        marks, marked_at = self._marks.take()
        if marks:  # given back if the transaction fails
            self._taken.append((marks, marked_at or d.decided_at))
        await self._c.execute(
            _RECORD,
            *_decision_row(d),
            send.address if send else None,
            send.fingerprint if send else None,
            send is not None,
            send is not None and send.new_recipient,
            send.day if send else None,
            d.request.campaign_id,
            d.outcome is Outcome.DEFERRED,
            event.id,
            caused_by,
            subject,
            event.type,
            event.model_dump_json(),
            marks,
            marked_at or d.decided_at,
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
