"""The gateway's read API (``zapflow.gateway.read_api``) answered by a running ingest over NATS.

The gateway app is the real one (its error format, its router); only authentication is
replaced by a fixed principal per test, since API keys are the gateway's own concern. Ingest runs
in-process on the session's nats-server with a durable of its own, filtered to this module's
tenants.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError

from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.specs import ConsumerSpec
from zapflow.contracts.streams import ZF_INBOUND
from zapflow.contracts.subjects import INBOUND_WEBHOOK_RECEIVED_V1, subject_for
from zapflow.embedded import free_port
from zapflow.gateway.api import build_app
from zapflow.gateway.auth import Principal, current_tenant
from zapflow.gateway.scopes import MESSAGES_READ
from zapflow.ingest.app import Deps, create_service
from zapflow.ingest.settings import Settings
from zapflow.testing import connect as connect_nats
from zapflow.testing import own_durables_seed, unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


class Stack:
    def __init__(self, nc: Client, durable: str, tenants: Iterator[str]) -> None:
        self.nc, self.js, self.durable, self.tenants = nc, nc.jetstream(), durable, tenants
        self.last_seq = 0

    async def send(self, tenant: str, channel: str, provider: str, body: dict[str, Any]) -> None:
        evt = WebhookReceived(
            tenant_id=tenant,
            provider=provider,
            channel_id=channel,
            received_at=datetime.now(UTC),
            content_type="application/json",
            body_b64=base64.b64encode(json.dumps(body).encode()).decode(),
        )
        ack = await self.js.publish(
            subject_for(evt), evt.model_dump_json().encode(), headers={"Nats-Msg-Id": str(evt.id)}
        )
        self.last_seq = max(self.last_seq, ack.seq)
        deadline = time.monotonic() + 10
        while True:
            info = await self.js.consumer_info(ZF_INBOUND.name, self.durable)
            if info.ack_floor.stream_seq >= self.last_seq and info.num_ack_pending == 0:
                return
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)

    def client(self, tenant: str, nc: Any = None) -> httpx.AsyncClient:
        app = build_app(SimpleNamespace(nc=nc or self.nc), None, None)  # type: ignore[arg-type]
        reader = Principal(tenant, "key-1", frozenset({MESSAGES_READ}))
        app.dependency_overrides[current_tenant] = lambda: reader
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


@pytest_asyncio.fixture(scope="module")
async def stack(
    nats_url: str, fresh_db: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    tenants = [unique("t") for _ in range(8)]
    spec = ConsumerSpec(
        durable=unique("ingest-test"),
        stream=ZF_INBOUND.name,
        owner="ingest",
        filter_subjects=tuple(f"{INBOUND_WEBHOOK_RECEIVED_V1}.{t}.>" for t in tenants),
        ack_wait_s=10,
        max_deliver=3,
        description="read api tests",
    )
    settings = Settings(
        nats_url=nats_url,
        nats_nkey_seed=own_durables_seed(),  # its raw consumer is this module's own
        database_url=fresh_db("ingest_api"),
        http_port=free_port(),
        media_dir=Path(tmp_path_factory.mktemp("media")),
        media_poll_s=0.1,
        shutdown_grace_s=3,
    )
    service = create_service(settings, Deps(raw_consumer=spec))
    nc = await connect_nats(nats_url)
    try:
        async with service.running():
            yield Stack(nc, spec.durable, iter(tenants))
        # after the service stopped: deleting it under a running consumer loop fails its fetch
        await nc.jetstream().delete_consumer(ZF_INBOUND.name, spec.durable)
    finally:
        await nc.close()


def evolution(
    message_id: str, jid: str, text: str | None, ts: int, **message: Any
) -> dict[str, Any]:
    content = message or {"conversation": text}
    return {
        "event": "messages.upsert",
        "instance": "loja",
        "date_time": "2025-11-20T14:00:00.000Z",
        "data": {
            "key": {"remoteJid": jid, "fromMe": False, "id": message_id},
            "pushName": "Cliente",
            "message": content,
            "messageTimestamp": ts,
        },
    }


async def test_conversations_timeline_contacts_and_search(stack: Stack) -> None:
    tenant, channel = next(stack.tenants), unique("ch")
    for i in range(3):
        jid = f"551199999{i:04d}@s.whatsapp.net"
        await stack.send(
            tenant,
            channel,
            "evolution",
            evolution(f"M{i}", jid, f"pedido número {i}", 1763647200 + i),
        )
    async with stack.client(tenant) as api:
        first = await api.get("/v1/conversations", params={"limit": 2})
        assert first.status_code == 200
        body = first.json()
        assert [c["contact"]["phone"] for c in body["items"]] == [
            "+5511999990002",
            "+5511999990001",
        ]
        rest = await api.get(
            "/v1/conversations", params={"limit": 2, "cursor": body["next_cursor"]}
        )
        assert [c["contact"]["phone"] for c in rest.json()["items"]] == ["+5511999990000"]
        assert rest.json()["next_cursor"] is None
        assert (
            len((await api.get("/v1/conversations", params={"unread": "true"})).json()["items"])
            == 3
        )
        assert (await api.get("/v1/conversations", params={"status": "closed"})).json()[
            "items"
        ] == []

        conv = body["items"][0]
        one = await api.get(f"/v1/conversations/{conv['id']}")
        assert (one.status_code, one.json()["unread_count"]) == (200, 1)
        timeline = await api.get(f"/v1/conversations/{conv['id']}/messages")
        assert [m["text"] for m in timeline.json()["items"]] == ["pedido número 2"]

        contact = await api.get("/v1/contacts", params={"phone": "+55 (11) 99999-0002"})
        assert contact.status_code == 200
        assert (await api.get(f"/v1/contacts/{contact.json()['id']}")).json() == contact.json()

        found = await api.get("/v1/messages/search", params={"q": "pedido"})
        assert len(found.json()["items"]) == 3

    async with stack.client(next(stack.tenants)) as stranger:
        assert (await stranger.get(f"/v1/conversations/{conv['id']}")).status_code == 404
        assert (await stranger.get(f"/v1/conversations/{conv['id']}/messages")).status_code == 404
        assert (await stranger.get(f"/v1/contacts/{contact.json()['id']}")).status_code == 404
        assert (await stranger.get("/v1/messages/search", params={"q": "pedido"})).json()[
            "items"
        ] == []


async def test_errors_map_to_404_400_and_503(stack: Stack) -> None:
    async with stack.client(next(stack.tenants)) as api:
        missing = await api.get(f"/v1/conversations/{uuid4()}")
        assert (missing.status_code, missing.json()) == (404, {"error": "conversation not found"})
        assert (await api.get("/v1/contacts", params={"phone": "12"})).status_code == 400
        assert (
            await api.get("/v1/contacts", params={"phone": "+5511912345678"})
        ).status_code == 404
        bad = await api.get("/v1/conversations", params={"cursor": "garbage"})
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid cursor")
        assert (
            await api.get("/v1/conversations", params={"channel_id": "UPPER"})
        ).status_code == 400
        assert (await api.get(f"/v1/media/{uuid4()}")).status_code == 404

    class SilentNats:
        async def request(self, *args: Any, **kwargs: Any) -> Any:
            raise NatsTimeoutError

    async with stack.client(next(stack.tenants), nc=SilentNats()) as api:
        down = await api.get("/v1/conversations")
        assert (down.status_code, down.headers["retry-after"]) == (503, "1")


async def test_media_is_streamed_with_its_type_and_digest(stack: Stack) -> None:
    tenant, channel = next(stack.tenants), unique("ch")
    image = {
        "imageMessage": {"mimetype": "image/png", "caption": "foto"},
        "base64": base64.b64encode(PNG).decode(),
    }
    await stack.send(
        tenant,
        channel,
        "evolution",
        evolution("IMG1", "5511999990001@s.whatsapp.net", None, 1763647200, **image),
    )
    async with stack.client(tenant) as api:
        convs = (await api.get("/v1/conversations")).json()["items"]
        (message,) = (await api.get(f"/v1/conversations/{convs[0]['id']}/messages")).json()["items"]
        deadline = time.monotonic() + 10
        while (media := await api.get(f"/v1/media/{message['id']}")).status_code == 404:
            assert media.json()["error"] == "media not stored yet"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert media.status_code == 200
        assert media.content == PNG
        assert media.headers["content-type"] == "image/png"
        assert media.headers["content-length"] == str(len(PNG))
        assert media.headers["content-disposition"].startswith("attachment;")
        assert media.headers["x-content-type-options"] == "nosniff"
        assert media.headers["etag"].strip('"') == hashlib.sha256(PNG).hexdigest()


async def test_openapi_documents_the_read_routes(stack: Stack) -> None:
    async with stack.client(next(stack.tenants)) as api:
        spec = (await api.get("/openapi.json")).json()
    for path in (
        "/v1/conversations",
        "/v1/conversations/{conversation_id}",
        "/v1/conversations/{conversation_id}/messages",
        "/v1/contacts/{contact_id}",
        "/v1/contacts",
        "/v1/messages/search",
        "/v1/media/{message_id}",
    ):
        assert "get" in spec["paths"][path], path
    assert "ConversationView" in spec["components"]["schemas"]
    assert "MessageView" in spec["components"]["schemas"]
