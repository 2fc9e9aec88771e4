"""Shared pieces of the SQL adapters: the connection type and row mappers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from zapflow.compliance.domain import ChannelState, ConsentRecord, Outcome
from zapflow.compliance.ports import StoredDecision
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.sending.v1 import SendRequest

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

DECISION_COLUMNS = (
    "message_id, tenant_id, channel_id, decision_id, seq, outcome, reason, text, until,"
    " decided_at, request, request_event_id, correlation_id"
)

CHANNEL_NAMES = (
    "channel_id", "provider", "timezone", "quiet_hours_start", "quiet_hours_end",
    "require_opt_in", "service_window_hours", "daily_cap", "enabled", "registered_at",
)  # fmt: skip
CHANNEL_COLUMNS = ", ".join(CHANNEL_NAMES)


def channel_from(row: asyncpg.Record) -> ChannelState:
    return ChannelState(**{name: row[name] for name in CHANNEL_NAMES})


def consent_from(channel_id: str, state: str, source: str, changed_at: datetime) -> ConsentRecord:
    return ConsentRecord(
        channel_id=channel_id or None,
        state=ConsentState(state),
        changed_at=changed_at,
        source=ConsentSource(source),
    )


def inserted(status: str) -> bool:
    """True when an ``INSERT … ON CONFLICT`` command status reports one row written."""
    return status == "INSERT 0 1"


def decision_from(row: asyncpg.Record) -> StoredDecision:
    return StoredDecision(
        message_id=row["message_id"],
        tenant_id=row["tenant_id"],
        channel_id=row["channel_id"],
        decision_id=row["decision_id"],
        seq=row["seq"],
        outcome=Outcome(row["outcome"]),
        reason=row["reason"],
        text=row["text"],
        until=row["until"],
        decided_at=row["decided_at"],
        request=SendRequest.model_validate_json(row["request"]),
        request_event_id=row["request_event_id"],
        correlation_id=row["correlation_id"],
    )


async def fetch_consents(
    conn: Conn, tenant_id: str, addresses: Sequence[str]
) -> list[ConsentRecord]:
    rows = await conn.fetch(
        "SELECT channel_id, state, source, changed_at FROM consents"
        " WHERE tenant_id = $1 AND address = ANY($2::text[])",
        tenant_id,
        list(addresses),
    )
    return [consent_from(r["channel_id"], r["state"], r["source"], r["changed_at"]) for r in rows]


class PendingMarks:
    """Outbox events published but not marked yet (``Store.mark_published_soon``).

    Whoever takes them writes the mark, or gives them back when its transaction fails.
    """

    BATCH: Final = 1000

    def __init__(self) -> None:
        self._ids: list[UUID] = []
        self._at: datetime | None = None

    def add(self, event_ids: Sequence[UUID], at: datetime) -> None:
        self._ids.extend(event_ids)
        self._at = at if self._at is None else max(self._at, at)

    def take(self) -> tuple[list[UUID], datetime | None]:
        """Up to ``BATCH`` ids, and the latest time they were published."""
        taken, self._ids = self._ids[: self.BATCH], self._ids[self.BATCH :]
        at = self._at
        if not self._ids:
            self._at = None
        return taken, at
