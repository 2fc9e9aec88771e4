"""Acceptance: SIGKILL ingest while it consumes; after a restart nothing is lost or doubled.

2,000 raw webhooks with distinct provider message ids are published; ``zapflow-ingest`` runs as
a real process and is killed with SIGKILL once part of them is stored, then started again. When
its ``ingest-raw`` consumer has nothing pending, exactly 2,000 messages are stored, each once,
and the events stream holds exactly one ``MessageReceived`` per message.

The test runs its own nats-server: it must use the production ``ingest-raw`` durable (with its
production ack wait and backoff), which no other test may feed. The messages in flight at the
kill are redelivered after the consumer's first backoff step (30 s), so the test takes ~35 s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.streams import INGEST_RAW, ZF_INBOUND, ZF_MESSAGES
from zapflow.contracts.subjects import MESSAGES_RECEIVED_V1, subject, subject_for
from zapflow.embedded import NatsServer, free_port
from zapflow.runtime.broker import declare
from zapflow.testing import connect as connect_nats
from zapflow.testing import nats_config, unique
from zapflow.testing.types import DatabaseFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

N = 2000
BIN = Path(sys.executable).parent


def webhook(tenant: str, channel: str, i: int) -> WebhookReceived:
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "5511999990000", "phone_number_id": "1"},
            "contacts": [{"profile": {"name": f"Cliente {i % 50}"}, "wa_id": f"55119{i % 50:08d}"}],
            "messages": [{"from": f"55119{i % 50:08d}", "id": f"wamid.CRASH{i:06d}",
                          "timestamp": str(1763647200 + i), "type": "text",
                          "text": {"body": f"mensagem {i}"}}],
        }}]}],
    }  # fmt: skip
    return WebhookReceived(
        id=uuid4(),
        tenant_id=tenant,
        provider="meta",
        channel_id=channel,
        received_at=datetime.now(UTC),
        body_b64=base64.b64encode(json.dumps(body).encode()).decode(),
        content_type="application/json",
    )


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def start_ingest(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([BIN / "zapflow-ingest"], env=env, stdout=out, stderr=out)


async def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, tail(log)
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(tail(log))


async def stored(db: asyncpg.Pool, tenant: str) -> int:
    return int(
        await db.fetchval("SELECT count(*) FROM ingest.messages WHERE tenant_id = $1", tenant)
    )


async def received_events(js: JetStreamContext, tenant: str) -> list[tuple[str, str]]:
    """(Nats-Msg-Id, message_id) of every MessageReceived of ``tenant`` on the stream."""
    sub = await js.pull_subscribe(
        subject(MESSAGES_RECEIVED_V1, tenant),
        stream=ZF_MESSAGES.name,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=10.0),
    )
    out: list[tuple[str, str]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                return out
            out += [(m.headers["Nats-Msg-Id"], json.loads(m.data)["message_id"]) for m in msgs]
    finally:
        await sub.unsubscribe()


async def test_sigkill_mid_flow_loses_nothing_and_duplicates_nothing(
    fresh_db: DatabaseFactory, tmp_path: Path
) -> None:
    tenant, channel = unique("crash"), unique("ch")
    dsn = fresh_db("ingest_crash")
    log = tmp_path / "ingest.log"
    with NatsServer(config=nats_config()) as server:
        port = free_port()
        env = {
            **os.environ,
            "NATS_URL": server.url,
            "DATABASE_URL": dsn,
            "ZF_INGEST_HTTP_PORT": str(port),
            "ZF_INGEST_MEDIA_DIR": str(tmp_path / "media"),
            "ZF_INGEST_LOG_FORMAT": "json",
        }
        nc = await connect_nats(server.url)
        db = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        proc: subprocess.Popen[bytes] | None = None
        try:
            js = nc.jetstream()
            await declare(js, [ZF_INBOUND])
            for i in range(N):
                evt = webhook(tenant, channel, i)
                await js.publish(
                    subject_for(evt),
                    evt.model_dump_json().encode(),
                    headers={"Nats-Msg-Id": str(evt.id)},
                )

            proc = start_ingest(env, log)
            await wait_ready(port, proc, log)
            deadline = time.monotonic() + 60
            while (done := await stored(db, tenant)) < N // 4:
                assert time.monotonic() < deadline, "ingest made no progress"
                await asyncio.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            at_kill = await stored(db, tenant)
            assert 0 < done <= at_kill < N, f"killed too late: {at_kill} of {N} stored"

            proc = start_ingest(env, log)
            await wait_ready(port, proc, log)
            deadline = time.monotonic() + 90
            while True:
                info = await js.consumer_info(ZF_INBOUND.name, INGEST_RAW.durable)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
                assert time.monotonic() < deadline, f"backlog left: {info}"
                await asyncio.sleep(0.2)

            rows = await db.fetchrow(
                "SELECT count(*) AS n, count(DISTINCT provider_message_id) AS distinct_ids"
                " FROM ingest.messages WHERE tenant_id = $1",
                tenant,
            )
            assert (rows["n"], rows["distinct_ids"]) == (N, N)
            logged = await db.fetchval(
                "SELECT count(*) FROM ingest.webhook_log WHERE tenant_id = $1", tenant
            )
            assert logged == N
            events = await received_events(js, tenant)
            assert len(events) == N
            assert len({msg_id for msg_id, _ in events}) == N
            assert len({message_id for _, message_id in events}) == N
        finally:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=20)
            await db.close()
            await nc.close()
