"""Retention purge on PostgreSQL and the gateway credentials lookup over NATS."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio

from zapflow.ingest.app import Deps
from zapflow.ingest.maintenance import Retention, purge_once
from zapflow.testing import unique

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def ingest_deps() -> Deps:
    """No background purge: the tests purge themselves, and would race it for the lock."""
    return Deps(background=False)


async def test_purge_removes_only_rows_past_their_retention(ingest: Any) -> None:
    old, recent = uuid4(), uuid4()
    for event_id, age in ((old, "10 days"), (recent, "1 hour")):
        await ingest.db.execute(
            "INSERT INTO webhook_log (event_id, tenant_id, channel_id, provider, received_at,"
            " outcome, body)"
            " VALUES ($1, 't', 'c', 'meta', now() - $2::text::interval, 'stored', '')",
            event_id,
            age,
        )
        await ingest.db.execute(
            "INSERT INTO outbox (source_event_id, seq, event_id, subject, type, payload,"
            " created_at) VALUES ($1, 0, $1, 's', 't', '{}', now() - $2::text::interval)",
            event_id,
            age,
        )
        await ingest.db.execute(
            "INSERT INTO processed_events (event_id, consumer, processed_at)"
            " VALUES ($1, 'x', now() - $2::text::interval)",
            event_id,
            age,
        )
    removed = await purge_once(
        ingest.db, Retention(webhook_log_days=7, outbox_days=2, inbox_days=9)
    )
    assert removed["webhook_log"] >= 1
    for table, key in (
        ("webhook_log", "event_id"),
        ("outbox", "source_event_id"),
        ("processed_events", "event_id"),
    ):
        kept = await ingest.db.fetch(
            f"SELECT {key} FROM {table} WHERE {key} = ANY($1::uuid[])", [old, recent]
        )
        assert [r[key] for r in kept] == [recent], table


async def test_purge_removes_changes_that_waited_too_long_for_their_message(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    # a stored message's receipt: history, kept however old
    echo = webhooks.evo_text("3EB0KEPT", from_me=True, event="send.message")
    await ingest.send(tenant, channel, "evolution", echo)
    receipt = webhooks.evo_status("3EB0KEPT", "READ", "2025-11-20T14:02:00.000Z")
    await ingest.send(tenant, channel, "evolution", receipt)
    outcomes: dict[str, UUID] = {}
    for provider_id, age in (("wamid.OLD", "20 days"), ("wamid.NEW", "1 hour")):
        await ingest.db.execute(
            "INSERT INTO message_status_history"
            " (tenant_id, channel_id, provider_message_id, status, at, recorded_at)"
            " VALUES ($1, $2, $3, 'delivered', now(), now() - $4::text::interval)",
            tenant,
            channel,
            provider_id,
            age,
        )
        await ingest.db.execute(
            "INSERT INTO message_pending_changes"
            " (tenant_id, channel_id, provider_message_id, change, at, payload, recorded_at)"
            " VALUES ($1, $2, $3, 'revoke', now(), '{}', now() - $4::text::interval)",
            tenant,
            channel,
            provider_id,
            age,
        )
        outcomes[provider_id] = uuid4()
        await ingest.db.execute(
            "INSERT INTO outbound_pending_outcomes"
            " (message_id, event_id, tenant_id, provider_message_id, type, payload, recorded_at)"
            " VALUES ($1, $1, $2, $3, 'zf.sending.sent.v1', '{}', now() - $4::text::interval)",
            outcomes[provider_id],
            tenant,
            provider_id,
            age,
        )
    await ingest.db.execute(
        "UPDATE message_status_history SET recorded_at = now() - interval '30 days'"
        " WHERE channel_id = $1 AND message_id IS NOT NULL",
        channel,
    )

    await purge_once(
        ingest.db, Retention(webhook_log_days=7, outbox_days=2, inbox_days=9, pending_days=14)
    )
    receipts = await ingest.db.fetch(
        "SELECT provider_message_id FROM message_status_history WHERE channel_id = $1"
        " ORDER BY provider_message_id",
        channel,
    )
    assert [r["provider_message_id"] for r in receipts] == ["3EB0KEPT", "wamid.NEW"]
    changes = await ingest.db.fetch(
        "SELECT provider_message_id FROM message_pending_changes WHERE channel_id = $1", channel
    )
    assert [r["provider_message_id"] for r in changes] == ["wamid.NEW"]
    parked = await ingest.db.fetch(
        "SELECT message_id FROM outbound_pending_outcomes WHERE tenant_id = $1", tenant
    )
    assert [r["message_id"] for r in parked] == [outcomes["wamid.NEW"]]
