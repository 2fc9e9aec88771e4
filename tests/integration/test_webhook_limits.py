"""Webhooks at their limits, through the real gateway and ingest (in process), NATS and PostgreSQL.

* a signed 5 MiB Evolution webhook (inline base64 media) is acknowledged, its body stored in the
  ``zf_inbound_bodies`` object store (the raw event is far over NATS' 1 MiB ``max_payload``), and
  ingested: the message, and its media in the media store;
* a signed Meta webhook with 12,000 items (PostgreSQL keeps its default
  ``max_locks_per_transaction``) is stored completely;
* the app-level Meta URL routes one batch for two numbers to their two channels' conversations.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from pydantic import SecretStr

from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.specs import ConsumerSpec
from zapflow.contracts.streams import INBOUND_BODIES, ZF_INBOUND
from zapflow.contracts.subjects import INBOUND_WEBHOOK_RECEIVED_V1, webhook_received
from zapflow.embedded import free_port
from zapflow.gateway import channels, tenants
from zapflow.gateway.app import create_service as create_gateway
from zapflow.gateway.schemas import ChannelCreate, PaceIn
from zapflow.gateway.settings import Settings as GatewaySettings
from zapflow.ingest.app import Deps as IngestDeps
from zapflow.ingest.app import create_service as create_ingest
from zapflow.ingest.settings import Settings as IngestSettings
from zapflow.runtime.service import Service
from zapflow.testing import own_durables_seed, unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration

APP_SECRET = "limits-app-secret"
JWT_KEY = "limits-jwt-key-0123456789abcdef"
MIB = 1024 * 1024


@cache
def fixtures_root() -> Path:
    if override := os.environ.get("ZF_PROVIDER_FIXTURES"):
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "providers" / "meta").is_dir():
            return parent / "shared" / "providers"
    raise pytest.UsageError("shared/providers not found; set ZF_PROVIDER_FIXTURES")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(key: str) -> str:
    """An HS256 JWT like the one Evolution sends with a webhook's ``jwt_key``."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"app": "evolution", "action": "webhook", "exp": int(time.time()) + 600}
    payload = b64url(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def meta_signature(body: bytes) -> dict[str, str]:
    digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


async def until(check: Callable[[], Awaitable[Any]], within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while not (value := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
    return value


@dataclass
class Stack:
    gateway: Service
    ingest: Service
    client: httpx.AsyncClient
    tenant: str
    db: asyncpg.Pool

    async def channel(self, provider: str, account: str, secrets: dict[str, str]) -> str:
        request = ChannelCreate(
            id=unique(provider),
            provider=provider,
            provider_account=account,
            pace=PaceIn(rate_per_second=10),
            secrets=secrets,
        )
        box = self.gateway.app.state.gateway.box  # type: ignore[union-attr]
        async with self.gateway.pool.acquire() as conn:
            created = await channels.register(conn, box, self.tenant, request)
        cache_ = self.gateway.app.state.gateway.cache  # type: ignore[union-attr]
        for _ in range(500):
            if cache_.get(created.channel_id) is not None:
                break
            await asyncio.sleep(0.02)
        return created.channel_id

    async def webhook_token(self, channel_id: str) -> str:
        token: str = await self.gateway.pool.fetchval(
            "SELECT webhook_token FROM channels WHERE id = $1", channel_id
        )
        return token


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_url: str, pg_dsn: str, fresh_db: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    port = free_port()
    gateway = create_gateway(
        GatewaySettings(
            nats_url=nats_url,
            database_url=SecretStr(pg_dsn),
            http_port=port,
            shutdown_grace_s=3,
            gc_freeze=False,
        )
    )
    tenant = unique("limits")
    raw = ConsumerSpec(
        durable=unique("ingest-limits"),
        stream=ZF_INBOUND.name,
        owner="ingest",
        filter_subjects=(f"{INBOUND_WEBHOOK_RECEIVED_V1}.{tenant}.>",),
        ack_wait_s=60,
        max_deliver=3,
        description="webhook limits tests",
    )
    ingest_dsn = fresh_db("ingest_limits")
    ingest = create_ingest(
        IngestSettings(
            nats_url=nats_url,
            nats_nkey_seed=own_durables_seed(),  # its raw consumer is this module's own
            database_url=SecretStr(ingest_dsn),
            http_port=free_port(),
            media_dir=Path(tmp_path_factory.mktemp("media")),
            media_poll_s=0.2,
            shutdown_grace_s=3,
        ),
        IngestDeps(raw_consumer=raw),
    )
    async with gateway.running(), ingest.running():
        async with gateway.pool.acquire() as conn:
            await tenants.create_tenant(conn, tenant, "Limits")
        base_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            yield Stack(gateway, ingest, client, tenant, ingest.pool)
        await ingest.js.delete_consumer(ZF_INBOUND.name, raw.durable)


async def test_a_signed_5_mib_evolution_webhook_is_acknowledged_and_ingested(
    stack: Stack, js: JetStreamContext
) -> None:
    channel = await stack.channel("evolution", "loja-centro", {"jwt_key": JWT_KEY})
    doc = json.loads((fixtures_root() / "evolution" / "inbound_image.json").read_bytes())
    media = os.urandom(3 * MIB + 768 * 1024)
    doc["data"]["message"]["base64"] = base64.b64encode(media).decode()
    body = json.dumps(doc).encode()
    assert len(body) >= 5 * MIB
    token = await stack.webhook_token(channel)

    response = await stack.client.post(
        f"/webhooks/evolution/{channel}?token={token}",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {jwt(JWT_KEY)}"},
    )

    assert response.status_code == 200, response.text
    event_id = response.json()["id"]
    msg = await js.get_last_msg(  # the test's own (admin) view
        ZF_INBOUND.name, webhook_received(stack.tenant, channel)
    )
    event = WebhookReceived.model_validate_json(msg.data)
    stored_size = len(body) - len(doc["apikey"]) + len("[scrubbed]")  # the token was scrubbed
    assert (event.body_ref, event.body_size, event.body_b64) == (event_id, stored_size, "")
    assert len(msg.data) < 64 * 1024  # the event travels small; the body lives in the bucket
    stored = await (await js.object_store(INBOUND_BODIES.bucket)).get(event_id)
    assert json.loads(stored.data)["apikey"] == "[scrubbed]"  # the envelope's token never stored
    wamid = doc["data"]["key"]["id"]

    async def media_stored() -> Any:
        return await stack.db.fetchrow(
            "SELECT m.kind, m.media ->> 'stored_key' AS key, d.size_bytes, d.sha256"
            " FROM messages m JOIN media d ON d.message_id = m.id"
            " WHERE m.channel_id = $1 AND m.provider_message_id = $2",
            channel,
            wamid,
        )

    row = await until(media_stored)
    assert (row["kind"], row["size_bytes"]) == ("image", len(media))
    assert row["sha256"] == hashlib.sha256(media).hexdigest()
    logged = await stack.db.fetchval(
        "SELECT body FROM webhook_log WHERE event_id::text = $1", event_id
    )
    assert len(logged) == stored_size
    assert doc["apikey"].encode() not in logged


def meta_batch(number: str, statuses: int, messages: int) -> bytes:
    """One Meta change for ``number`` with that many receipts (for unknown ids) and messages."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511999990000", "phone_number_id": number},
        "contacts": [],
        "messages": [
            {
                "from": f"55119{i:08d}",
                "id": f"wamid.M{i}",
                "timestamp": "1763647200",
                "type": "text",
                "text": {"body": f"oi {i}"},
            }
            for i in range(messages)
        ],
        "statuses": [
            {
                "id": f"wamid.S{i}",
                "status": "delivered",
                "timestamp": "1763647300",
                "recipient_id": "5511999990001",
            }
            for i in range(statuses)
        ],
    }
    entry = {"id": "WABA", "changes": [{"field": "messages", "value": value}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


@pytest.mark.timeout(240)
async def test_a_webhook_with_thousands_of_items_is_stored_completely(stack: Stack) -> None:
    number = "710000000000001"
    channel = await stack.channel("meta", number, {"app_secret": APP_SECRET})
    statuses, messages = 10_000, 2_000
    body = meta_batch(number, statuses, messages)

    response = await stack.client.post("/webhooks/meta", content=body, headers=meta_signature(body))

    assert response.status_code == 200, response.text

    async def logged() -> Any:
        return await stack.db.fetchrow(
            "SELECT outcome, items FROM webhook_log WHERE channel_id = $1", channel
        )

    row = await until(logged, within=200)
    assert (row["outcome"], row["items"]) == ("stored", statuses + messages)
    assert (
        await stack.db.fetchval("SELECT count(*) FROM messages WHERE channel_id = $1", channel)
        == messages
    )
    assert (
        await stack.db.fetchval(
            "SELECT count(*) FROM message_status_history WHERE channel_id = $1", channel
        )
        == statuses
    )


async def test_the_app_url_routes_a_batch_for_two_numbers_to_two_channels(stack: Stack) -> None:
    first, second = "720000000000001", "720000000000002"
    channel_a = await stack.channel("meta", first, {"app_secret": APP_SECRET})
    channel_b = await stack.channel("meta", second, {"app_secret": APP_SECRET})
    doc_a, doc_b = json.loads(meta_batch(first, 0, 1)), json.loads(meta_batch(second, 0, 1))
    doc_b["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid.OTHER"
    doc_a["entry"].append(doc_b["entry"][0])
    body = json.dumps(doc_a).encode()

    response = await stack.client.post("/webhooks/meta", content=body, headers=meta_signature(body))

    assert response.status_code == 200, response.text
    assert len(response.json()["ids"]) == 2

    async def both() -> Any:
        rows = await stack.db.fetch(
            "SELECT channel_id, provider_message_id FROM messages WHERE channel_id = ANY($1)",
            [channel_a, channel_b],
        )
        return rows if len(rows) == 2 else None

    rows = await until(both)
    assert {(r["channel_id"], r["provider_message_id"]) for r in rows} == {
        (channel_a, "wamid.M0"),
        (channel_b, "wamid.OTHER"),
    }
