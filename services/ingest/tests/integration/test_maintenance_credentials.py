"""Retention purge on PostgreSQL and the gateway credentials lookup over NATS."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from nats.aio.msg import Msg

from zapflow.contracts.errors import TransientError
from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)
from zapflow.ingest.adapters.credentials import NatsCredentials
from zapflow.ingest.maintenance import Retention, purge_once

pytestmark = pytest.mark.integration


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


async def test_credentials_come_from_the_gateway_and_are_cached(ingest: Any) -> None:
    asked: list[ChannelCredentialsRequest] = []

    async def gateway(msg: Msg) -> None:
        request = ChannelCredentialsRequest.model_validate_json(msg.data)
        asked.append(request)
        reply = ChannelCredentialsReply(
            found=True, provider="meta", credentials={"access_token": "t"}
        )
        await msg.respond(reply.model_dump_json().encode())

    tenant = ingest.tenant()
    lookup = NatsCredentials(ingest.nc, timeout_s=1)
    sub = await ingest.nc.subscribe(CHANNEL_CREDENTIALS, queue="gateway", cb=gateway)
    try:
        first = await lookup(tenant, "ch-1")
        again = await lookup(tenant, "ch-1")
    finally:
        await sub.unsubscribe()
    assert first == again
    assert first.credentials == {"access_token": "t"}
    assert [(a.tenant_id, a.channel_id) for a in asked] == [(tenant, "ch-1")]
    with pytest.raises(TransientError):
        await NatsCredentials(ingest.nc, timeout_s=0.3)(tenant, "ch-2")
