"""The gateway's send API against real NATS and PostgreSQL, with ingest answering conversations.

A send is accepted (202) once its ``SendRequested`` is committed with its idempotency key; the
outbox relay publishes it to ``ZF_SENDING`` on the channel's partition with ``Nats-Msg-Id`` =
event id. Keys are durable per tenant: a replay answers the same message and publishes nothing,
another body under the same key is 409, and concurrent requests with one key make one message.
Another tenant's channels and conversations do not exist for a key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
import pytest_asyncio
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import SecretStr

from zapflow.contracts.common import ActorKind, SendOrigin
from zapflow.contracts.content import TemplateContent, TextContent
from zapflow.contracts.headers import NATS_MSG_ID, ZF_TYPE
from zapflow.contracts.sending.v1 import SendRequested
from zapflow.contracts.specs import ConsumerSpec
from zapflow.contracts.streams import ZF_INBOUND, ZF_SENDING
from zapflow.contracts.subjects import (
    INBOUND_WEBHOOK_RECEIVED_V1,
    SEND_PARTITIONS,
    SENDING_REQUESTED_V1,
    send_requested,
)
from zapflow.embedded import free_port
from zapflow.gateway import tenants
from zapflow.gateway.app import create_service as create_gateway
from zapflow.gateway.settings import Settings as GatewaySettings
from zapflow.ingest.app import Deps as IngestDeps
from zapflow.ingest.app import create_service as create_ingest
from zapflow.ingest.settings import Settings as IngestSettings
from zapflow.runtime.service import Service
from zapflow.testing import connect as connect_nats
from zapflow.testing import own_durables_seed, unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration

PHONE = "+5511999990001"
TEXT = {"kind": "text", "body": "Seu pedido saiu para entrega"}
MAX_BODY = 8192


@dataclass
class Api:
    gateway: Service
    client: httpx.AsyncClient
    tenant_a: str
    key_a: str
    tenant_b: str
    key_b: str
    js: JetStreamContext  # the test's own (admin) view of the streams

    @property
    def a(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_a}"}

    @property
    def b(self) -> dict[str, str]:
        return {"X-Api-Key": self.key_b}

    @property
    def pool(self) -> asyncpg.Pool:
        return self.gateway.pool

    async def channel(self, provider: str = "evolution", **extra: Any) -> dict[str, Any]:
        body = {"id": unique("ch"), "provider": provider, "pace": {"rate_per_second": 5}, **extra}
        created = await self.client.post("/v1/channels", json=body, headers=self.a)
        assert created.status_code == 201, created.text
        channel: dict[str, Any] = created.json()
        return channel


async def until(check: Callable[[], Awaitable[Any]], within: float = 15) -> Any:
    deadline = time.monotonic() + within
    while not (value := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return value


@pytest_asyncio.fixture(scope="module")
async def api(
    nats_url: str, pg_dsn: str, fresh_db: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
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
            api_max_body_bytes=MAX_BODY,
        )
    )
    names = [unique("a"), unique("b")]
    raw = ConsumerSpec(  # this module's own ingest durable: only its tenants' webhooks
        durable=unique("ingest-send-api"),
        stream=ZF_INBOUND.name,
        owner="ingest",
        filter_subjects=tuple(f"{INBOUND_WEBHOOK_RECEIVED_V1}.{t}.>" for t in names),
        ack_wait_s=10,
        max_deliver=3,
        description="send api tests",
    )
    ingest = create_ingest(
        IngestSettings(
            nats_url=nats_url,
            nats_nkey_seed=own_durables_seed(),  # its raw consumer is this module's own
            database_url=fresh_db("ingest_send_api"),
            http_port=free_port(),
            media_dir=Path(tmp_path_factory.mktemp("media")),
            shutdown_grace_s=3,
        ),
        IngestDeps(raw_consumer=raw, background=False),
    )
    async with gateway.running(), ingest.running():
        keys = []
        async with gateway.pool.acquire() as conn:
            for name in names:
                await tenants.create_tenant(conn, name, name)
                keys.append((name, (await tenants.issue_api_key(conn, name)).key))
        inspector = await connect_nats(nats_url)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield Api(gateway, client, *keys[0], *keys[1], inspector.jetstream())
        await inspector.close()
        await ingest.js.delete_consumer(ZF_INBOUND.name, raw.durable)


async def published(api: Api, tenant: str, channel: str, count: int = 1) -> list[Msg]:
    """The first ``count`` SendRequested stored for the channel, read from the stream."""
    sub = await api.js.subscribe(
        f"{SENDING_REQUESTED_V1}.{tenant}.{channel}.*",
        stream=ZF_SENDING.name,
        ordered_consumer=True,
    )
    try:
        return [await sub.next_msg(timeout=10) for _ in range(count)]
    finally:
        await sub.unsubscribe()


async def stored_count(api: Api, tenant: str, channel: str) -> int:
    """SendRequested stored for the channel, once the tenant's outbox is fully relayed."""

    async def relayed() -> bool:
        unsent = await api.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND sent_at IS NULL", tenant
        )
        return bool(unsent == 0)

    await until(relayed)
    info = await api.js.stream_info(
        ZF_SENDING.name, subjects_filter=f"{SENDING_REQUESTED_V1}.{tenant}.{channel}.*"
    )
    return sum((info.state.subjects or {}).values())


def as_event(msg: Msg, tenant: str, channel: str) -> SendRequested:
    event = SendRequested.model_validate_json(msg.data)
    base, _, partition = msg.subject.rpartition(".")
    assert base == send_requested(tenant, channel)
    assert int(partition) in range(SEND_PARTITIONS)
    assert msg.headers is not None
    assert msg.headers[NATS_MSG_ID] == str(event.id)
    assert msg.headers[ZF_TYPE] == SENDING_REQUESTED_V1
    return event


# -- accepted and published ---------------------------------------------------------------------


async def test_a_send_to_a_phone_is_accepted_then_published_on_its_channel(api: Api) -> None:
    channel = (await api.channel())["id"]
    body = {"channel_id": channel, "to": PHONE, "content": TEXT, "reply_to": "wamid.Q"}
    response = await api.client.post(
        "/v1/messages", json=body, headers={**api.a, "Idempotency-Key": "order-1"}
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert (accepted["channel_id"], accepted["idempotency_key"]) == (channel, "order-1")

    [msg] = await published(api, api.tenant_a, channel)
    event = as_event(msg, api.tenant_a, channel)
    request = event.request
    assert event.tenant_id == api.tenant_a
    assert str(request.message_id) == accepted["message_id"]
    assert (request.channel_id, request.to.phone, request.conversation_id) == (channel, PHONE, None)
    assert request.content == TextContent(body=TEXT["body"])
    assert request.reply_to == "wamid.Q"
    assert request.origin is SendOrigin.API
    assert request.idempotency_key == "order-1"
    assert request.requested_by is not None
    assert request.requested_by.kind is ActorKind.API_KEY
    key_id = await api.pool.fetchval("SELECT id FROM api_keys WHERE tenant_id = $1", api.tenant_a)
    assert request.requested_by.id == str(key_id)


def evolution_text(message_id: str, phone_digits: str, text: str) -> dict[str, Any]:
    return {
        "event": "messages.upsert",
        "instance": "loja",
        "date_time": datetime.now(UTC).isoformat(),
        "data": {
            "key": {
                "remoteJid": f"{phone_digits}@s.whatsapp.net",
                "fromMe": False,
                "id": message_id,
            },
            "pushName": "Cliente",
            "message": {"conversation": text},
            "messageTimestamp": int(time.time()),
        },
    }


async def conversation_from_a_webhook(api: Api, channel: dict[str, Any]) -> dict[str, Any]:
    """A customer writes in through the real webhook; ingest makes the conversation."""
    body = evolution_text("IN-1", PHONE[1:], "oi, e o pedido?")

    async def stored() -> bool:  # 404 until the webhook cache heard of the channel (NOTIFY)
        answer = await api.client.post(channel["webhook_url"], json=body)
        assert answer.status_code in (200, 404), answer.text
        return answer.status_code == 200

    await until(stored)

    async def listed() -> Any:
        page = await api.client.get(
            "/v1/conversations", params={"channel_id": channel["id"]}, headers=api.a
        )
        assert page.status_code == 200, page.text
        return page.json()["items"]

    [conversation] = await until(listed)
    return dict(conversation)


async def test_a_conversation_send_goes_to_its_contact_on_its_channel(api: Api) -> None:
    channel = await api.channel()
    conversation = await conversation_from_a_webhook(api, channel)
    template = {
        "kind": "template",
        "name": "pedido_enviado",
        "language": "pt_BR",
        "body_params": ["Ana", "#123"],
    }
    response = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        json={"content": template, "reply_to": "IN-1", "priority": "high"},
        headers=api.a,
    )
    assert response.status_code == 202, response.text
    assert response.json()["conversation_id"] == conversation["id"]

    [msg] = await published(api, api.tenant_a, channel["id"])
    request = as_event(msg, api.tenant_a, channel["id"]).request
    assert str(request.message_id) == response.json()["message_id"]
    assert request.conversation_id == UUID(conversation["id"])
    assert request.to.phone == PHONE
    assert request.to.contact_id == UUID(conversation["contact"]["id"])
    assert request.reply_to == "IN-1"
    assert isinstance(request.content, TemplateContent)
    assert request.content.body_params == ("Ana", "#123")
    assert request.priority == "high"

    foreign = await api.client.post(
        f"/v1/conversations/{conversation['id']}/messages", json={"content": TEXT}, headers=api.b
    )
    assert (foreign.status_code, foreign.json()) == (404, {"error": "conversation not found"})


# -- idempotency ---------------------------------------------------------------------------------


async def test_a_replayed_key_answers_the_same_message_and_publishes_nothing_new(
    api: Api,
) -> None:
    channel = (await api.channel())["id"]
    body = {"channel_id": channel, "to": PHONE, "content": TEXT}
    headers = {**api.a, "Idempotency-Key": unique("k")}
    first = await api.client.post("/v1/messages", json=body, headers=headers)
    again = await api.client.post("/v1/messages", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert await stored_count(api, api.tenant_a, channel) == 1

    other = {**body, "content": {"kind": "text", "body": "outra coisa"}}
    conflict = await api.client.post("/v1/messages", json=other, headers=headers)
    assert conflict.status_code == 409
    assert conflict.json() == {"error": "Idempotency-Key already used with a different request"}
    assert await stored_count(api, api.tenant_a, channel) == 1
    row = await api.pool.fetchrow(
        "SELECT message_id, channel_id FROM send_requests"
        " WHERE tenant_id = $1 AND idempotency_key = $2",
        api.tenant_a,
        headers["Idempotency-Key"],
    )
    assert row is not None
    assert (str(row["message_id"]), row["channel_id"]) == (first.json()["message_id"], channel)


async def test_concurrent_requests_with_one_key_make_one_message(api: Api) -> None:
    channel = (await api.channel())["id"]
    body = {"channel_id": channel, "to": PHONE, "content": TEXT}
    headers = {**api.a, "Idempotency-Key": unique("race")}
    answers = await asyncio.gather(
        *(api.client.post("/v1/messages", json=body, headers=headers) for _ in range(8))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["message_id"] for a in answers}) == 1
    assert await stored_count(api, api.tenant_a, channel) == 1


async def test_keys_belong_to_a_tenant(api: Api) -> None:
    mine, theirs = (await api.channel())["id"], unique("ch")
    created = await api.client.post(
        "/v1/channels",
        json={"id": theirs, "provider": "evolution", "pace": {"rate_per_second": 1}},
        headers=api.b,
    )
    assert created.status_code == 201
    key = {"Idempotency-Key": unique("shared")}
    a = await api.client.post(
        "/v1/messages", json={"channel_id": mine, "to": PHONE, "content": TEXT},
        headers={**api.a, **key},
    )  # fmt: skip
    b = await api.client.post(
        "/v1/messages", json={"channel_id": theirs, "to": PHONE, "content": TEXT},
        headers={**api.b, **key},
    )  # fmt: skip
    assert (a.status_code, b.status_code) == (202, 202)
    assert a.json()["message_id"] != b.json()["message_id"]


# -- refusals --------------------------------------------------------------------------------------


async def test_another_tenants_channel_is_404_and_a_disabled_one_409(api: Api) -> None:
    channel = (await api.channel())["id"]
    body = {"channel_id": channel, "to": PHONE, "content": TEXT}
    foreign = await api.client.post("/v1/messages", json=body, headers=api.b)
    assert (foreign.status_code, foreign.json()) == (404, {"error": "unknown channel"})
    disabled = await api.client.post(f"/v1/channels/{channel}/disable", json={}, headers=api.a)
    assert disabled.status_code == 200
    refused = await api.client.post("/v1/messages", json=body, headers=api.a)
    assert (refused.status_code, refused.json()) == (409, {"error": "channel disabled"})
    assert await stored_count(api, api.tenant_a, channel) == 0
    assert await stored_count(api, api.tenant_b, channel) == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"to": PHONE, "content": TEXT}, "channel_id: Field required"),
        ({"channel_id": "x", "to": "11 99999-0001", "content": TEXT}, "to: String should match"),
        ({"channel_id": "x", "to": PHONE, "content": {"kind": "text"}}, "content.text.body: Field"),
        ({"channel_id": "x", "to": PHONE, "content": TEXT, "colour": 1}, "colour: Extra inputs"),
    ],
)
async def test_malformed_sends_are_400_with_a_reason(
    api: Api, body: dict[str, Any], reason: str
) -> None:
    response = await api.client.post("/v1/messages", json=body, headers=api.a)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid request"
    assert any(r.startswith(reason) for r in response.json()["reasons"]), response.json()


async def test_not_json_is_400_and_an_oversized_body_413(api: Api) -> None:
    headers = {**api.a, "content-type": "application/json"}
    garbage = await api.client.post("/v1/messages", content=b"{not json", headers=headers)
    assert garbage.status_code == 400
    huge = b'{"channel_id": "x", "to": "' + b"9" * MAX_BODY + b'"}'
    too_large = await api.client.post("/v1/messages", content=huge, headers=headers)
    assert (too_large.status_code, too_large.json()) == (413, {"error": "body too large"})


async def test_a_missing_or_invalid_key_is_401(api: Api) -> None:
    body = {"channel_id": "x", "to": PHONE, "content": TEXT}
    missing = await api.client.post("/v1/messages", json=body)
    assert (missing.status_code, missing.json()) == (401, {"error": "missing API key"})
    assert missing.headers["www-authenticate"] == "Bearer"
    invalid = await api.client.post("/v1/messages", json=body, headers={"X-Api-Key": "zf_nope"})
    assert (invalid.status_code, invalid.json()) == (401, {"error": "invalid API key"})
    conversation = await api.client.post(
        "/v1/conversations/00000000-0000-0000-0000-000000000000/messages", json={"content": TEXT}
    )
    assert conversation.status_code == 401
