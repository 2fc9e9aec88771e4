"""Shared pieces of the SQL adapters: the connection type and row mappers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from zapflow.compliance.domain import ConsentRecord, Outcome
from zapflow.compliance.ports import StoredDecision
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.sending.v1 import SendRequest

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

DECISION_COLUMNS = (
    "message_id, tenant_id, channel_id, decision_id, seq, outcome, reason, text, until,"
    " decided_at, request, request_event_id, correlation_id"
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
    return [
        ConsentRecord(
            channel_id=r["channel_id"] or None,
            state=ConsentState(r["state"]),
            changed_at=r["changed_at"],
            source=ConsentSource(r["source"]),
        )
        for r in rows
    ]
