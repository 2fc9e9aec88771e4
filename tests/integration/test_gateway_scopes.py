"""API keys on a production gateway, against real NATS and PostgreSQL, with ingest and compliance
answering: keys carry chosen scopes and every route refuses a key without its scope (403); another
tenant's ids are not found on every route that takes one (404); the public demo key is refused
even when stored; failed authentications are limited per client address (429).

The gateway runs with ``ZF_ENV`` production and a secrets key of its own (the harness's
development default would be refused). Client addresses come from ``X-Forwarded-For``, which
uvicorn trusts from 127.0.0.1 by default.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from zapflow.compliance.app import create_service as create_compliance
from zapflow.compliance.settings import Settings as ComplianceSettings
from zapflow.contracts.specs import ConsumerSpec
from zapflow.contracts.streams import ZF_INBOUND
from zapflow.contracts.subjects import INBOUND_WEBHOOK_RECEIVED_V1
from zapflow.embedded import free_port
from zapflow.gateway import scopes, tenants
from zapflow.gateway.app import create_service as create_gateway
from zapflow.gateway.auth import DEV_KEY_REFUSED
from zapflow.gateway.crypto import new_key
from zapflow.gateway.settings import Settings as GatewaySettings
from zapflow.ingest.app import Deps as IngestDeps
from zapflow.ingest.app import create_service as create_ingest
from zapflow.ingest.settings import Settings as IngestSettings
from zapflow.testing import own_durables_seed, unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration

PHONE = "+5511999990001"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/v1/conversations", scopes.MESSAGES_READ),
    ("GET", "/v1/messages/search?q=oi", scopes.MESSAGES_READ),
    ("GET", f"/v1/contacts?phone={PHONE}", scopes.MESSAGES_READ),
    ("POST", "/v1/messages", scopes.MESSAGES_SEND),
    ("GET", "/v1/compliance/rules", scopes.COMPLIANCE_READ),
    ("PUT", "/v1/compliance/rules", scopes.COMPLIANCE_WRITE),
    ("POST", "/v1/consent/opt-out", scopes.CONSENT_WRITE),
    ("POST", "/v1/consent/opt-in", scopes.CONSENT_WRITE),
    ("GET", "/v1/channels", scopes.CHANNELS_READ),
    ("POST", "/v1/channels", scopes.CHANNELS_WRITE),
    ("GET", "/v1/api-keys", scopes.KEYS_ADMIN),
    ("POST", "/v1/api-keys", scopes.KEYS_ADMIN),
]
"""Routes without ids (those with ids are below, with another tenant's ids)."""


@dataclass
class Stack:
    client: httpx.AsyncClient
    gateway: Any
    tenant_a: str
    key_a: str
    tenant_b: str
    key_b: str

    def a(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_a}", **extra}

    def b(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_b}", **extra}

    async def key(self, headers: dict[str, str], *granted: str) -> dict[str, Any]:
        made = await self.client.post(
            "/v1/api-keys", json={"name": "test", "scopes": list(granted)}, headers=headers
        )
        assert made.status_code == 201, made.text
        body: dict[str, Any] = made.json()
        return body


async def until(check: Callable[[], Awaitable[Any]], within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while not (value := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
    return value


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
            public_url=f"http://127.0.0.1:{port}",
            shutdown_grace_s=3,
            outbox_poll_s=0.2,
            gc_freeze=False,
            environment="production",
            secrets_key=SecretStr(new_key()),
        )
    )
    names = [unique("a"), unique("b")]
    raw = ConsumerSpec(
        durable=unique("ingest-scopes"),
        stream=ZF_INBOUND.name,
        owner="ingest",
        filter_subjects=tuple(f"{INBOUND_WEBHOOK_RECEIVED_V1}.{t}.>" for t in names),
        ack_wait_s=10,
        max_deliver=3,
        description="scope tests",
    )
    ingest = create_ingest(
        IngestSettings(
            nats_url=nats_url,
            nats_nkey_seed=own_durables_seed(),  # its raw consumer is this module's own
            database_url=fresh_db("ingest_scopes"),
            http_port=free_port(),
            media_dir=Path(tmp_path_factory.mktemp("media")),
            media_poll_s=0.1,
            shutdown_grace_s=3,
        ),
        IngestDeps(raw_consumer=raw),
    )
    compliance = create_compliance(
        ComplianceSettings(
            nats_url=nats_url,
            database_url=fresh_db("compliance_scopes"),
            http_port=free_port(),
            scheduler_interval_s=0.2,
            outbox_sweep_after_s=1.0,
            unknown_channel_grace_s=10.0,
            shutdown_grace_s=3,
        )
    )
    async with compliance.running(), gateway.running(), ingest.running():
        keys = []
        async with gateway.pool.acquire() as conn:
            for name in names:
                await tenants.create_tenant(conn, name, name)
                keys.append((name, (await tenants.issue_api_key(conn, name)).key))
            await tenants.issue_api_key(conn, names[1], "demo", key=tenants.DEMO_API_KEY)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield Stack(client, gateway, *keys[0], *keys[1])
        await ingest.js.delete_consumer(ZF_INBOUND.name, raw.durable)


async def test_keys_carry_the_scopes_chosen_for_them(stack: Stack) -> None:
    sender = await stack.key(stack.a(), scopes.MESSAGES_SEND, scopes.MESSAGES_READ)
    assert sender["key"].startswith(sender["prefix"])
    assert sender["scopes"] == [scopes.MESSAGES_SEND, scopes.MESSAGES_READ]
    as_sender = {"X-Api-Key": sender["key"]}
    channel = {"id": unique("ch"), "provider": "evolution", "pace": {"rate_per_second": 5}}
    refused = await stack.client.post("/v1/channels", json=channel, headers=as_sender)
    assert (refused.status_code, refused.json()) == (
        403,
        {"error": "API key lacks scope channels:write"},
    )
    created = await stack.client.post("/v1/channels", json=channel, headers=stack.a())
    assert created.status_code == 201
    send = {"channel_id": channel["id"], "to": PHONE, "content": {"kind": "text", "body": "oi"}}
    assert (
        await stack.client.post("/v1/messages", json=send, headers=as_sender)
    ).status_code == 202
    patch = await stack.client.patch(
        f"/v1/channels/{channel['id']}", json={"display_name": "x"}, headers=as_sender
    )
    assert patch.status_code == 403
    rules = await stack.client.put("/v1/compliance/rules", json={}, headers=as_sender)
    assert rules.status_code == 403

    listed = (await stack.client.get("/v1/api-keys", headers=stack.a())).json()["items"]
    assert any(item["id"] == sender["id"] for item in listed)
    assert all("key" not in item for item in listed)

    # keys:admin issues keys, but never with a scope it lacks itself
    keys_admin = {"X-Api-Key": (await stack.key(stack.a(), scopes.KEYS_ADMIN))["key"]}
    beyond = await stack.client.post(
        "/v1/api-keys", json={"name": "x", "scopes": [scopes.CHANNELS_WRITE]}, headers=keys_admin
    )
    assert beyond.status_code == 403
    assert (await stack.key(keys_admin, scopes.KEYS_ADMIN))["scopes"] == [scopes.KEYS_ADMIN]
    unknown = await stack.client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["everything"]}, headers=stack.a()
    )
    assert unknown.status_code == 400

    revoked = await stack.client.post(f"/v1/api-keys/{sender['id']}/revoke", headers=keys_admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    after = await stack.client.get("/v1/conversations", headers=as_sender)
    assert (after.status_code, after.json()) == (401, {"error": "revoked API key"})


async def test_every_route_refuses_a_key_without_its_scope(stack: Stack) -> None:
    everything = set(scopes.SCOPES) - {scopes.ADMIN}
    lacking = {
        scope: {"X-Api-Key": (await stack.key(stack.a(), *sorted(everything - {scope})))["key"]}
        for scope in everything
    }
    for method, path, scope in ROUTES:
        answer = await stack.client.request(method, path, json={}, headers=lacking[scope])
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json() == {"error": f"API key lacks scope {scope}"}


async def test_another_tenants_ids_are_not_found_on_every_route(stack: Stack) -> None:
    # tenant B: a channel, an inbound image (conversation, contact, stored media), a send
    channel = (
        await stack.client.post(
            "/v1/channels",
            json={
                "id": unique("b"),
                "provider": "evolution",
                "provider_account": "loja",
                "pace": {"rate_per_second": 5},
            },
            headers=stack.b(),
        )
    ).json()
    cid = channel["id"]
    webhook = {
        "event": "messages.upsert",
        "instance": "loja",
        "date_time": "2025-11-20T14:00:00.000Z",
        "data": {
            "key": {"remoteJid": "5511999990001@s.whatsapp.net", "fromMe": False, "id": "B1"},
            "pushName": "Cliente",
            "message": {
                "imageMessage": {"mimetype": "image/png"},
                "base64": base64.b64encode(PNG).decode(),
            },
            "messageTimestamp": 1763647200,
        },
    }

    async def stored() -> bool:  # once the webhook cache learned the new channel
        answer = await stack.client.post(channel["webhook_url"], json=webhook)
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200

    await until(stored)

    async def conversation() -> Any:
        page = await stack.client.get(f"/v1/conversations?channel_id={cid}", headers=stack.b())
        return page.json()["items"]

    (conv,) = await until(conversation)
    (msg,) = (
        await stack.client.get(f"/v1/conversations/{conv['id']}/messages", headers=stack.b())
    ).json()["items"]

    async def media_stored() -> bool:
        answer = await stack.client.get(f"/v1/media/{msg['id']}", headers=stack.b())
        return answer.status_code == 200

    await until(media_stored)
    send = {"channel_id": cid, "to": PHONE, "content": {"kind": "text", "body": "oi"}}
    sent = (await stack.client.post("/v1/messages", json=send, headers=stack.b())).json()

    async def decided() -> bool:
        answer = await stack.client.get(
            f"/v1/messages/{sent['message_id']}/decision", headers=stack.b()
        )
        return answer.status_code == 200

    await until(decided)
    b_key = (await stack.key(stack.b(), scopes.MESSAGES_READ))["id"]

    # tenant A, with an admin key: every one of those ids is unknown
    contact = conv["contact"]["id"]
    for method, path, body in (
        ("GET", f"/v1/channels/{cid}", None),
        ("PATCH", f"/v1/channels/{cid}", {"display_name": "mine"}),
        ("POST", f"/v1/channels/{cid}/disable", None),
        ("POST", f"/v1/channels/{cid}/enable", None),
        ("POST", "/v1/messages", send),
        ("GET", f"/v1/contacts/consent?channel_id={cid}&address={PHONE}", None),
        ("POST", "/v1/consent/opt-out", {"phone": PHONE, "channel_id": cid}),
        ("POST", "/v1/consent/opt-in", {"phone": PHONE, "channel_id": cid}),
        ("GET", f"/v1/conversations/{conv['id']}", None),
        ("GET", f"/v1/conversations/{conv['id']}/messages", None),
        ("POST", f"/v1/conversations/{conv['id']}/messages", {"content": send["content"]}),
        ("GET", f"/v1/contacts/{contact}", None),
        ("GET", f"/v1/contacts?phone={PHONE}", None),
        ("GET", f"/v1/media/{msg['id']}", None),
        ("GET", f"/v1/messages/{sent['message_id']}/decision", None),
        ("POST", f"/v1/api-keys/{b_key}/revoke", None),
    ):
        answer = await stack.client.request(method, path, json=body, headers=stack.a())
        assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
    listed = await stack.client.get(f"/v1/conversations?channel_id={cid}", headers=stack.a())
    assert listed.json()["items"] == []
    assert (await stack.client.get(f"/v1/channels/{cid}", headers=stack.b())).status_code == 200


async def test_a_production_gateway_refuses_the_demo_key_even_when_stored(stack: Stack) -> None:
    answer = await stack.client.get(
        "/v1/conversations", headers={"Authorization": f"Bearer {tenants.DEMO_API_KEY}"}
    )
    assert (answer.status_code, answer.json()) == (401, {"error": DEV_KEY_REFUSED})


async def test_failed_authentications_are_limited_per_client_address(stack: Stack) -> None:
    attacker = {"X-Forwarded-For": "198.51.100.77"}
    for n in range(stack.gateway.settings.auth_failure_burst):
        wrong = {**attacker, "X-Api-Key": f"zf_{n:08x}_{'x' * 32}"}
        assert (await stack.client.get("/v1/channels", headers=wrong)).status_code == 401
    limited = await stack.client.get(
        "/v1/channels", headers={**attacker, "X-Api-Key": f"zf_ffffffff_{'y' * 32}"}
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    # the tenant's working key, used before, is still let through from that address
    assert (await stack.client.get("/v1/channels", headers=stack.a())).status_code == 200
    assert (await stack.client.get("/v1/channels", headers=stack.a(**attacker))).status_code == 200
    # another address is not affected
    other = {"X-Forwarded-For": "198.51.100.78", "X-Api-Key": f"zf_eeeeeeee_{'z' * 32}"}
    assert (await stack.client.get("/v1/channels", headers=other)).status_code == 401
