"""Ingest throughput: raw webhooks into PostgreSQL through the real ingest consumer.

* ``ingest.events_per_s``: N raw webhooks (Meta inbound texts with distinct message ids, from
  :data:`CUSTOMERS` customers) are published to ``ZF_INBOUND`` beforehand; then the ingest
  service starts (the production runtime consumer, handler and SQL with default settings, i.e.
  4 pull workers of 64, in this process, with a durable of its own filtered to the benchmark's
  tenant) and the clock runs from the first
  stored message until all N are stored (start-up is not counted). Each event is one
  transaction (inbox row, contact, conversation, message, webhook log, outbox) plus its
  published ``MessageReceived`` and the ack. N scales with the run's duration.
* ``ingest.pg_insert.sequential`` (the reference, measured by this module on the same database
  right before): one connection doing single-row ``INSERT … ON CONFLICT DO NOTHING`` of an
  inbox-style row in autocommit, the operation ``pg.insert.sequential`` measures. The ratio says
  how many raw inserts' worth of time one ingested webhook costs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Final

import asyncpg
from pydantic import SecretStr

from bench import infra
from bench.context import Context
from bench.report import Figure
from zapflow.contracts.access import ADMIN
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.specs import ConsumerSpec
from zapflow.contracts.streams import ZF_INBOUND
from zapflow.contracts.subjects import INBOUND_WEBHOOK_RECEIVED_V1, subject_for
from zapflow.embedded import free_port
from zapflow.ingest.app import Deps, create_service
from zapflow.ingest.settings import Settings
from zapflow.runtime.broker import connect_tooling, declare

EVENTS_PER_SECOND_OF_RUN: Final = 1200
"""N = this x the run's duration (6,000 in a full run, 1,800 with ``--quick``)."""
CUSTOMERS: Final = 200
PUBLISH_WINDOW: Final = 500

_REF_DDL: Final = """
CREATE TABLE IF NOT EXISTS bench_ref_inbox (
    event_id uuid PRIMARY KEY, tenant_id text NOT NULL, body jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now())
"""
_REF_INSERT: Final = (
    "INSERT INTO bench_ref_inbox (event_id, tenant_id, body) VALUES ($1, $2, $3) "
    "ON CONFLICT (event_id) DO NOTHING"
)


def _webhook(tenant: str, channel: str, i: int) -> WebhookReceived:
    phone = f"55119{i % CUSTOMERS:08d}"
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "5511999990000", "phone_number_id": "1"},
            "contacts": [{"profile": {"name": f"Cliente {i % CUSTOMERS}"}, "wa_id": phone}],
            "messages": [{"from": phone, "id": f"wamid.BENCH{i:08d}",
                          "timestamp": str(1763647200 + i), "type": "text",
                          "text": {"body": "Olá! Quero saber o status do meu pedido."}}],
        }}]}],
    }  # fmt: skip
    return WebhookReceived(
        tenant_id=tenant,
        provider="meta",
        channel_id=channel,
        received_at=datetime.now(UTC),
        body_b64=base64.b64encode(json.dumps(body).encode()).decode(),
        content_type="application/json",
    )


async def run(ctx: Context) -> list[Figure]:
    dsn = await ctx.database("bench_ingest")
    reference = Figure.baseline("ingest.pg_insert.sequential", await _reference(dsn, ctx), "rows/s")
    rate = await _ingest_rate(ctx, dsn, int(EVENTS_PER_SECOND_OF_RUN * ctx.duration))
    events = Figure(
        "ingest.events_per_s",
        rate,
        "events/s",
        reference_name=reference.name,
        reference=reference.value,
        better="higher",
    )
    return [reference, events]


async def _reference(dsn: str, ctx: Context) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_REF_DDL)
        body = json.dumps({"bench": True})
        for seconds, measured in ((ctx.warmup, False), (ctx.duration, True)):
            rows, started = 0, time.perf_counter()
            while time.perf_counter() < started + seconds:
                await conn.execute(_REF_INSERT, uuid.uuid4(), "tenant-bench", body)
                rows += 1
            if measured:
                return rows / (time.perf_counter() - started)
    finally:
        await conn.close()
    raise AssertionError("unreachable")


async def _ingest_rate(ctx: Context, dsn: str, n: int) -> float:
    tenant, channel = f"bench-{uuid.uuid4().hex[:8]}", f"ch-{uuid.uuid4().hex[:8]}"
    spec = ConsumerSpec(
        durable=f"ingest-bench-{uuid.uuid4().hex[:8]}",
        stream=ZF_INBOUND.name,
        owner="ingest",
        filter_subjects=(f"{INBOUND_WEBHOOK_RECEIVED_V1}.{tenant}.>",),
        description="bench_ingest",
    )
    nc = await connect_tooling(ctx.nats_url, "bench")
    try:
        js = nc.jetstream(publish_async_max_pending=PUBLISH_WINDOW)
        await declare(js, [ZF_INBOUND])
        futures = []
        for i in range(n):
            evt = _webhook(tenant, channel, i)
            data = evt.model_dump_json().encode()
            futures.append(
                await js.publish_async(subject_for(evt), data, headers={"Nats-Msg-Id": str(evt.id)})
            )
        await asyncio.gather(*futures)
        settings = Settings(
            nats_url=ctx.nats_url,
            database_url=SecretStr(dsn),
            http_port=free_port(),
            media_dir=ctx.workdir / "ingest-media",
            log_level="WARNING",
            # the durable is the benchmark's own, which ingest's identity may not create
            nats_nkey_seed=SecretStr(infra.identities().seed(ADMIN)),
        )
        service = create_service(settings, Deps(raw_consumer=spec, background=False))
        db = await asyncpg.connect(dsn)
        try:
            async with service.running():
                # the clock starts at the first stored message, so start-up is not counted
                first = await _stored_at_least(db, tenant, 1, poll_s=0.005)
                started = time.perf_counter()
                await _stored_at_least(db, tenant, n, poll_s=0.05)
                elapsed = time.perf_counter() - started
        finally:
            await db.close()
        await js.delete_consumer(ZF_INBOUND.name, spec.durable)
    finally:
        await nc.close()
    return (n - first) / elapsed


async def _stored_at_least(db: asyncpg.Connection, tenant: str, n: int, *, poll_s: float) -> int:
    """Wait until ``n`` messages of ``tenant`` are stored; returns the count seen then."""
    while True:
        count = int(
            await db.fetchval("SELECT count(*) FROM ingest.messages WHERE tenant_id = $1", tenant)
        )
        if count >= n:
            return count
        await asyncio.sleep(poll_s)
