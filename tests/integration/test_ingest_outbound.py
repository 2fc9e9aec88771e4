"""The outbound path: send events in ZF_SENDING become outbound messages in ingest's timelines.

Ingest runs in-process on the session's nats-server and a database of its own, with two
durables of this module's own (raw webhooks on ZF_INBOUND, send events on ZF_SENDING), filtered
to this module's tenants. Send events are published as their producers publish them
(``zapflow.runtime.broker.Publisher``), provider status webhooks as the gateway stores them, and
what ingest did is read back through its NATS read API (``list_conversations``,
``list_messages``) and the events it published on ZF_MESSAGES.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import SecretStr

from zapflow.contracts import subjects as s
from zapflow.contracts.common import Actor, ActorKind, SendOrigin
from zapflow.contracts.content import (
    MediaContent,
    MediaType,
    OutboundContent,
    TemplateContent,
    TextContent,
)
from zapflow.contracts.envelope import Event
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.queries import ERROR_HEADER
from zapflow.contracts.queries import ingest_v1 as q
from zapflow.contracts.sending.v1 import (
    FailureReason,
    Recipient,
    SendFailed,
    SendRequest,
    SendRequested,
    SendSucceeded,
    SendVetoed,
    VetoReason,
)
from zapflow.contracts.specs import ConsumerSpec
from zapflow.contracts.streams import ZF_INBOUND, ZF_SENDING
from zapflow.embedded import free_port
from zapflow.ingest import ids
from zapflow.ingest.app import Deps, create_service
from zapflow.ingest.settings import Settings
from zapflow.runtime.broker import Publisher
from zapflow.testing import connect as connect_nats
from zapflow.testing import own_durables_seed, unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration

PHONE = "+5511999990001"
WA_ID = "5511999990001"
T0 = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)
TS0 = int(T0.timestamp())
OPERATOR = Actor(kind=ActorKind.OPERATOR, id="u-ana")
SEND_TYPES = (s.SENDING_REQUESTED_V1, s.SENDING_VETOED_V1, s.SENDING_SENT_V1, s.SENDING_FAILED_V1)


# -- payloads ---------------------------------------------------------------------------------
def request(channel: str, content: OutboundContent | None = None, **fields: Any) -> SendRequest:
    base: dict[str, Any] = {
        "message_id": uuid4(),
        "channel_id": channel,
        "to": Recipient(phone=PHONE),
        "content": content or TextContent(body="Seu pedido saiu para entrega"),
        "origin": SendOrigin.OPERATOR,
        "idempotency_key": unique("key"),
        "requested_by": OPERATOR,
    }
    return SendRequest.model_validate({**base, **fields})


def requested(tenant: str, req: SendRequest, at: datetime = T0) -> SendRequested:
    return SendRequested(tenant_id=tenant, request=req, occurred_at=at)


def vetoed(tenant: str, req: SendRequest, at: datetime = T0) -> SendVetoed:
    return SendVetoed(
        tenant_id=tenant,
        occurred_at=at,
        request=req,
        decision_id=uuid4(),
        reason=VetoReason.OPTED_OUT,
        text="the contact opted out of messages",
    )


def succeeded(tenant: str, req: SendRequest, provider_id: str, seconds: int = 1) -> SendSucceeded:
    return SendSucceeded(
        tenant_id=tenant,
        message_id=req.message_id,
        channel_id=req.channel_id,
        provider="meta",
        provider_message_id=provider_id,
        attempts=1,
        sent_at=T0 + timedelta(seconds=seconds),
    )


def failed(tenant: str, req: SendRequest, seconds: int = 1) -> SendFailed:
    return SendFailed(
        tenant_id=tenant,
        message_id=req.message_id,
        channel_id=req.channel_id,
        provider="meta",
        reason=FailureReason.INVALID_RECIPIENT,
        permanent=True,
        error_code="131026",
        error_text="Message undeliverable",
        attempts=1,
        failed_at=T0 + timedelta(seconds=seconds),
    )


def meta(value: dict[str, Any]) -> dict[str, Any]:
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"}, **value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def meta_status(
    provider_id: str, status: str, seconds: int, *, echo: str | None = None
) -> dict[str, Any]:
    item = {
        "id": provider_id,
        "status": status,
        "timestamp": str(TS0 + seconds),
        "recipient_id": WA_ID,
    }
    if echo is not None:
        item["biz_opaque_callback_data"] = echo
    return meta({"statuses": [item]})


def meta_text(provider_id: str, text: str = "oi") -> dict[str, Any]:
    message = {
        "from": WA_ID,
        "id": provider_id,
        "timestamp": str(TS0 - 60),
        "type": "text",
        "text": {"body": text},
    }
    return meta({"contacts": [{"wa_id": WA_ID, "profile": {"name": "Ana"}}], "messages": [message]})


def evolution(event: str, data: dict[str, Any], at: str) -> dict[str, Any]:
    return {
        "event": event,
        "instance": "loja",
        "data": data,
        "date_time": at,
        "sender": "5511999990000@s.whatsapp.net",
    }


def evo_echo(provider_id: str, text: str) -> dict[str, Any]:
    data = {
        "key": {"remoteJid": f"{WA_ID}@s.whatsapp.net", "fromMe": True, "id": provider_id},
        "message": {"conversation": text},
        "messageType": "conversation",
        "messageTimestamp": TS0 + 1,
    }
    return evolution("send.message", data, "2025-11-20T14:00:01.000Z")


def evo_status(provider_id: str, status: str, at: str) -> dict[str, Any]:
    data = {
        "keyId": provider_id,
        "remoteJid": f"{WA_ID}@s.whatsapp.net",
        "fromMe": True,
        "status": status,
    }
    return evolution("messages.update", data, at)


# -- harness ----------------------------------------------------------------------------------
@dataclass
class Outbound:
    """A running ingest fed through its two durables, and what it answers and publishes."""

    nc: Client
    db: asyncpg.Pool
    durables: dict[str, str]  # stream -> this module's durable
    tenants: Iterator[str]
    last_seq: dict[str, int] = field(default_factory=dict)

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    def tenant(self) -> str:
        return next(self.tenants)

    async def send(self, *events: Event, msg_id: str | None = None) -> None:
        """Publish send events as their producers do (or again, as a redelivery), then wait
        until ingest acked them."""
        for evt in events:
            await self.publish_send(evt, msg_id)
        await self.idle()

    async def webhook(self, tenant: str, channel: str, provider: str, body: dict[str, Any]) -> None:
        """Publish a raw provider webhook as the gateway stores it, then wait for ingest."""
        await self.publish_webhook(tenant, channel, provider, body)
        await self.idle()

    async def publish_send(self, evt: Event, msg_id: str | None = None) -> None:
        extra = {"Nats-Msg-Id": msg_id} if msg_id else None
        ack = await Publisher(self.js)(s.subject_for(evt), evt, extra)
        self._published(ZF_SENDING.name, ack.seq, ack.duplicate)

    async def publish_webhook(
        self, tenant: str, channel: str, provider: str, body: dict[str, Any]
    ) -> None:
        evt = WebhookReceived(
            tenant_id=tenant,
            provider=provider,
            channel_id=channel,
            received_at=datetime.now(UTC),
            content_type="application/json",
            body_b64=base64.b64encode(json.dumps(body).encode()).decode(),
        )
        ack = await self.js.publish(
            s.subject_for(evt), evt.model_dump_json().encode(), headers={"Nats-Msg-Id": str(evt.id)}
        )
        self._published(ZF_INBOUND.name, ack.seq, ack.duplicate)

    def _published(self, stream: str, seq: int, duplicate: bool | None) -> None:
        if not duplicate:
            self.last_seq[stream] = max(self.last_seq.get(stream, 0), seq)

    async def idle(self, within: float = 15.0) -> None:
        """Wait until everything published so far was acknowledged on both durables."""
        deadline = time.monotonic() + within
        for stream, durable in self.durables.items():
            while True:
                info = await self.js.consumer_info(stream, durable)
                floor = info.ack_floor.stream_seq if info.ack_floor else 0
                done = floor >= self.last_seq.get(stream, 0)
                if done and info.num_ack_pending == 0 and info.num_pending == 0:
                    break
                assert time.monotonic() < deadline, f"ingest still busy on {durable}"
                await asyncio.sleep(0.02)

    async def ask(self, spec: Any, req: Any, reply: type[Any]) -> Any:
        msg = await self.nc.request(
            spec.subject_for("gateway"), req.model_dump_json().encode(), timeout=5
        )
        assert not (msg.headers or {}).get(ERROR_HEADER), msg.data
        return reply.model_validate_json(msg.data)

    async def conversations(self, tenant: str) -> list[q.ConversationView]:
        page = await self.ask(
            q.LIST_CONVERSATIONS, q.ListConversationsRequest(tenant_id=tenant), q.ConversationsPage
        )
        return list(page.items)

    async def timeline(self, tenant: str, conversation_id: UUID) -> list[q.MessageView]:
        req = q.ListMessagesRequest(tenant_id=tenant, conversation_id=conversation_id)
        page = await self.ask(q.LIST_MESSAGES, req, q.MessagesPage)
        assert page.found
        return list(page.items)

    async def only_message(self, tenant: str) -> q.MessageView:
        """The tenant's one conversation holding one message."""
        (conversation,) = await self.conversations(tenant)
        (message,) = await self.timeline(tenant, conversation.id)
        return message

    async def events(self, type_name: str, tenant: str) -> list[dict[str, Any]]:
        """Every event of ``type_name`` ingest published for ``tenant``, oldest first."""
        subject = s.subject(type_name, tenant)
        stream = await self.js.find_stream_name_by_subject(subject)
        sub = await self.js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=5.0
            ),
        )
        out: list[dict[str, Any]] = []
        try:
            while True:
                try:
                    msgs = await sub.fetch(256, timeout=0.2)
                except (TimeoutError, nats.errors.TimeoutError):
                    return out
                out.extend(json.loads(m.data) for m in msgs)
        finally:
            await sub.unsubscribe()

    async def statuses(self, tenant: str) -> list[tuple[str, str | None]]:
        changes = await self.events(s.MESSAGES_STATUS_CHANGED_V1, tenant)
        return [(e["status"], e["previous"]) for e in changes]


@pytest_asyncio.fixture(scope="module")
async def outbound(
    nats_url: str, fresh_db: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Outbound]:
    tenants = [unique("t") for _ in range(30)]
    raw = ConsumerSpec(
        durable=unique("ingest-outbound-raw"),
        stream=ZF_INBOUND.name,
        owner="ingest",
        filter_subjects=tuple(f"{s.INBOUND_WEBHOOK_RECEIVED_V1}.{t}.>" for t in tenants),
        ack_wait_s=10,
        max_deliver=3,
        description="outbound tests: raw webhooks",
    )
    sends = ConsumerSpec(
        durable=unique("ingest-outbound-sends"),
        stream=ZF_SENDING.name,
        owner="ingest",
        filter_subjects=tuple(s.of_tenant(k, t) for t in tenants for k in SEND_TYPES),
        ack_wait_s=10,
        max_deliver=3,
        description="outbound tests: send events",
    )
    dsn = fresh_db("ingest_outbound")
    settings = Settings(
        nats_url=nats_url,
        nats_nkey_seed=own_durables_seed(),  # its consumers are this module's own
        database_url=SecretStr(dsn),
        http_port=free_port(),
        media_dir=Path(tmp_path_factory.mktemp("media")),
        shutdown_grace_s=3,
        log_format="text",
    )
    service = create_service(
        settings, Deps(raw_consumer=raw, outbound_consumer=sends, background=False)
    )
    nc = await connect_nats(nats_url)
    try:
        async with service.running():
            db = await asyncpg.create_pool(
                dsn, min_size=1, max_size=2, server_settings={"search_path": "ingest, public"}
            )
            try:
                durables = {ZF_INBOUND.name: raw.durable, ZF_SENDING.name: sends.durable}
                yield Outbound(nc, db, durables, iter(tenants))
            finally:
                await db.close()
        for spec in (raw, sends):  # once its consumers stopped pulling
            await nc.jetstream().delete_consumer(spec.stream, spec.durable)
    finally:
        await nc.close()


# -- recorded ---------------------------------------------------------------------------------
async def test_a_request_shows_as_a_queued_message_in_its_conversation(
    outbound: Outbound,
) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel, reply_to="wamid.QUOTED")
    evt = requested(tenant, req)
    await outbound.send(evt)

    (conversation,) = await outbound.conversations(tenant)
    assert (conversation.channel_id, conversation.contact.phone) == (channel, PHONE)
    assert (conversation.status, conversation.unread_count) == ("open", 0)
    assert conversation.last_message_at == T0
    (message,) = await outbound.timeline(tenant, conversation.id)
    assert message.id == req.message_id
    assert (message.direction, message.from_me, message.kind) == ("outbound", True, "text")
    assert message.text == "Seu pedido saiu para entrega"
    assert (message.status, message.status_at, message.sent_at) == ("queued", T0, T0)
    assert message.provider_message_id is None
    assert (message.origin, message.requested_by, message.reply_to) == (
        SendOrigin.OPERATOR,
        OPERATOR,
        "wamid.QUOTED",
    )
    assert message.outbound_content == req.content

    (recorded,) = await outbound.events(s.MESSAGES_OUTBOUND_RECORDED_V1, tenant)
    assert recorded["id"] == str(ids.event_id(evt.id, "recorded"))
    assert (recorded["message_id"], recorded["conversation_id"]) == (
        str(req.message_id),
        str(conversation.id),
    )
    assert recorded["causation_id"] == str(evt.id)
    (opened,) = await outbound.events(s.CONVERSATIONS_STATUS_CHANGED_V1, tenant)
    assert (opened["previous"], opened["changed_by"]) == (None, OPERATOR.model_dump())
    (contact,) = await outbound.events(s.CONTACTS_UPDATED_V1, tenant)
    assert (contact["created"], contact["party"]["phone"]) == (True, PHONE)
    assert await outbound.statuses(tenant) == []


async def test_template_and_media_content_show_in_the_timeline(outbound: Outbound) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    template = TemplateContent(
        name="pedido_enviado",
        language="pt_BR",
        body_params=("42",),
        rendered_text="Seu pedido 42 foi enviado",
    )
    image = MediaContent(
        media_type=MediaType.IMAGE, url="https://cdn.example/nota.png", caption="nota fiscal"
    )
    first, second = request(channel, template), request(channel, image)
    await outbound.send(
        requested(tenant, first), requested(tenant, second, T0 + timedelta(seconds=1))
    )

    (conversation,) = await outbound.conversations(tenant)
    newest, oldest = await outbound.timeline(tenant, conversation.id)
    assert (oldest.kind, oldest.text, oldest.outbound_content) == (
        "template",
        "Seu pedido 42 foi enviado",
        template,
    )
    assert newest.kind == "image"
    assert newest.media is not None
    assert (newest.media.caption, newest.media.url) == ("nota fiscal", image.url)
    found = await outbound.ask(
        q.SEARCH_MESSAGES, q.SearchMessagesRequest(tenant_id=tenant, query="fiscal"), q.MessagesPage
    )
    assert [m.id for m in found.items] == [second.message_id]


async def test_the_conversation_named_by_the_request_is_used_when_it_is_the_tenants(
    outbound: Outbound,
) -> None:
    tenant, other, channel = outbound.tenant(), outbound.tenant(), unique("ch")
    await outbound.webhook(tenant, channel, "meta", meta_text("wamid.IN1"))
    (conversation,) = await outbound.conversations(tenant)
    reply = request(channel, conversation_id=conversation.id, to=Recipient(wa_id=WA_ID))
    await outbound.send(requested(tenant, reply))

    (after,) = await outbound.conversations(tenant)
    assert (after.id, after.unread_count) == (conversation.id, 1)
    timeline = await outbound.timeline(tenant, conversation.id)
    assert [m.direction for m in timeline] == ["outbound", "inbound"]
    assert await outbound.events(s.CONVERSATIONS_STATUS_CHANGED_V1, tenant) != []

    # another tenant naming that conversation gets its own, with its own contact
    stranger = request(channel, conversation_id=conversation.id)
    await outbound.send(requested(other, stranger))
    (theirs,) = await outbound.conversations(other)
    assert theirs.id != conversation.id
    assert [m.id for m in await outbound.timeline(other, theirs.id)] == [stranger.message_id]
    assert len(await outbound.timeline(tenant, conversation.id)) == 2


# -- statuses ---------------------------------------------------------------------------------
async def test_sent_then_provider_receipts_move_forward_and_never_back(
    outbound: Outbound,
) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    campaign, recipient = uuid4(), uuid4()
    req = request(channel, origin=SendOrigin.CAMPAIGN, campaign_id=campaign, recipient_id=recipient)
    await outbound.send(requested(tenant, req), succeeded(tenant, req, "wamid.OUT1"))
    message = await outbound.only_message(tenant)
    assert (message.status, message.provider_message_id) == ("sent", "wamid.OUT1")
    assert message.status_at == T0 + timedelta(seconds=1)

    for status, seconds in (("sent", 1), ("delivered", 2), ("read", 3), ("delivered", 2)):
        await outbound.webhook(tenant, channel, "meta", meta_status("wamid.OUT1", status, seconds))
    await outbound.send(failed(tenant, req, seconds=9))  # a failure after read cannot be

    message = await outbound.only_message(tenant)
    assert (message.status, message.status_at) == ("read", T0 + timedelta(seconds=3))
    assert (message.status_reason, message.error_code) == (None, None)
    changes = await outbound.events(s.MESSAGES_STATUS_CHANGED_V1, tenant)
    assert [(e["status"], e["previous"]) for e in changes] == [
        ("sent", "queued"),
        ("delivered", "sent"),
        ("read", "delivered"),
    ]
    for change in changes:
        assert (change["message_id"], change["provider_message_id"]) == (
            str(req.message_id),
            "wamid.OUT1",
        )
        assert (change["origin"], change["campaign_id"], change["recipient_id"]) == (
            "campaign",
            str(campaign),
            str(recipient),
        )


async def test_receipts_before_send_succeeded_are_applied_when_it_links_them(
    outbound: Outbound,
) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel)
    await outbound.send(requested(tenant, req))
    for status, seconds in (("read", 3), ("delivered", 2)):
        await outbound.webhook(tenant, channel, "meta", meta_status("wamid.EARLY", status, seconds))
    assert (await outbound.only_message(tenant)).status == "queued"
    waiting = await outbound.db.fetchval(
        "SELECT count(*) FROM message_status_history"
        " WHERE channel_id = $1 AND provider_message_id = 'wamid.EARLY' AND message_id IS NULL",
        channel,
    )
    assert waiting == 2

    await outbound.send(succeeded(tenant, req, "wamid.EARLY"))
    message = await outbound.only_message(tenant)
    assert (message.status, message.provider_message_id) == ("read", "wamid.EARLY")
    assert message.status_at == T0 + timedelta(seconds=3)
    assert await outbound.statuses(tenant) == [("sent", "queued"), ("read", "sent")]
    linked = await outbound.db.fetch(
        "SELECT status, applied, message_id FROM message_status_history"
        " WHERE channel_id = $1 ORDER BY at",
        channel,
    )
    assert [(r["status"], r["applied"], r["message_id"]) for r in linked] == [
        ("delivered", False, req.message_id),
        ("read", True, req.message_id),
    ]


async def test_outcome_and_receipts_before_the_request_are_applied_when_it_arrives(
    outbound: Outbound,
) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel)
    await outbound.send(succeeded(tenant, req, "wamid.LATE"))
    await outbound.webhook(tenant, channel, "meta", meta_status("wamid.LATE", "delivered", 2))
    assert await outbound.conversations(tenant) == []

    await outbound.send(requested(tenant, req))
    message = await outbound.only_message(tenant)
    assert (message.id, message.status, message.provider_message_id) == (
        req.message_id,
        "delivered",
        "wamid.LATE",
    )
    assert await outbound.statuses(tenant) == [("sent", "queued"), ("delivered", "sent")]
    parked = await outbound.db.fetchval(
        "SELECT count(*) FROM outbound_pending_outcomes WHERE message_id = $1", req.message_id
    )
    assert parked == 0


async def test_a_receipt_naming_our_message_links_its_provider_id_without_an_outcome(
    outbound: Outbound,
) -> None:
    # the sender died during the call: no SendSucceeded, but Meta echoes our message id
    tenant, other, channel = outbound.tenant(), outbound.tenant(), unique("ch")
    req = request(channel)
    await outbound.send(requested(tenant, req))
    echo = str(req.message_id)
    await outbound.webhook(other, channel, "meta", meta_status("wamid.X", "sent", 1, echo=echo))
    await outbound.webhook(tenant, channel, "meta", meta_status("wamid.J", "sent", 1, echo="junk"))
    assert (await outbound.only_message(tenant)).provider_message_id is None  # not for them

    await outbound.webhook(tenant, channel, "meta", meta_status("wamid.D", "sent", 1, echo=echo))
    await outbound.webhook(tenant, channel, "meta", meta_status("wamid.D2", "read", 4, echo=echo))
    await outbound.webhook(
        tenant, channel, "meta", meta_status("wamid.D", "delivered", 2, echo=echo)
    )
    message = await outbound.only_message(tenant)
    assert (message.status, message.provider_message_id) == ("delivered", "wamid.D")
    changes = await outbound.events(s.MESSAGES_STATUS_CHANGED_V1, tenant)
    assert [(e["status"], e["provider_message_id"], e["client_message_id"]) for e in changes] == [
        ("sent", "wamid.D", echo),
        ("delivered", "wamid.D", echo),
    ]
    # the sender learns of it and reports the same id: nothing moves, nothing is published
    await outbound.send(succeeded(tenant, req, "wamid.D"))
    assert len(await outbound.events(s.MESSAGES_STATUS_CHANGED_V1, tenant)) == 2
    assert (await outbound.only_message(tenant)).status == "delivered"


async def test_receipts_naming_our_message_before_its_request_link_when_it_is_recorded(
    outbound: Outbound,
) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel)
    echo = str(req.message_id)
    await outbound.webhook(tenant, channel, "meta", meta_status("wamid.E", "sent", 1, echo=echo))
    await outbound.webhook(
        tenant, channel, "meta", meta_status("wamid.E", "delivered", 2, echo=echo)
    )
    assert await outbound.conversations(tenant) == []

    await outbound.send(requested(tenant, req))
    message = await outbound.only_message(tenant)
    assert (message.status, message.provider_message_id) == ("delivered", "wamid.E")
    (change,) = await outbound.events(s.MESSAGES_STATUS_CHANGED_V1, tenant)
    assert (change["status"], change["previous"], change["client_message_id"]) == (
        "delivered",
        "queued",
        echo,
    )


async def test_a_veto_shows_its_reason(outbound: Outbound) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel)
    await outbound.send(requested(tenant, req), vetoed(tenant, req, T0 + timedelta(seconds=1)))

    message = await outbound.only_message(tenant)
    assert (message.status, message.status_reason, message.error_code) == (
        "vetoed",
        "opted_out",
        "opted_out",
    )
    assert message.error_text == "the contact opted out of messages"
    (change,) = await outbound.events(s.MESSAGES_STATUS_CHANGED_V1, tenant)
    assert (change["status"], change["previous"], change["error_code"]) == (
        "vetoed",
        "queued",
        "opted_out",
    )
    assert change["provider_message_id"] is None


async def test_a_veto_before_its_request_records_the_message_once(outbound: Outbound) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel)
    await outbound.send(vetoed(tenant, req, T0 + timedelta(seconds=5)))
    message = await outbound.only_message(tenant)
    assert (message.id, message.status, message.status_reason) == (
        req.message_id,
        "vetoed",
        "opted_out",
    )

    await outbound.send(requested(tenant, req, T0))  # the request, redelivered late
    message = await outbound.only_message(tenant)
    assert (message.status, message.sent_at) == ("vetoed", T0)
    assert len(await outbound.events(s.MESSAGES_OUTBOUND_RECORDED_V1, tenant)) == 1
    assert await outbound.statuses(tenant) == [("vetoed", "queued")]


async def test_a_failure_shows_its_reason_code_and_text(outbound: Outbound) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel)
    await outbound.send(requested(tenant, req), failed(tenant, req))

    message = await outbound.only_message(tenant)
    assert (message.status, message.status_reason) == ("failed", "invalid_recipient")
    assert (message.error_code, message.error_text) == ("131026", "Message undeliverable")
    (change,) = await outbound.events(s.MESSAGES_STATUS_CHANGED_V1, tenant)
    assert (change["status"], change["error_code"], change["error_text"]) == (
        "failed",
        "131026",
        "Message undeliverable",
    )


# -- idempotency ------------------------------------------------------------------------------
async def test_redeliveries_and_duplicates_create_nothing_twice(outbound: Outbound) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel)
    first, sent = requested(tenant, req), succeeded(tenant, req, "wamid.DUP")
    await outbound.send(first, sent)
    await outbound.send(first, sent, msg_id=None)  # the producers retry: JetStream drops them
    await outbound.send(first, msg_id=unique("redelivery"))  # redelivered after a crash
    await outbound.send(sent, msg_id=unique("redelivery"))
    await outbound.send(requested(tenant, req))  # the same request again, a new event
    await outbound.webhook(tenant, channel, "meta", meta_status("wamid.DUP", "sent", 1))

    message = await outbound.only_message(tenant)
    assert (message.status, message.provider_message_id) == ("sent", "wamid.DUP")
    count = await outbound.db.fetchval(
        "SELECT count(*) FROM messages WHERE channel_id = $1", channel
    )
    assert count == 1
    (recorded,) = await outbound.events(s.MESSAGES_OUTBOUND_RECORDED_V1, tenant)
    assert recorded["id"] == str(ids.event_id(first.id, "recorded"))
    assert len(await outbound.events(s.CONTACTS_UPDATED_V1, tenant)) == 1
    assert len(await outbound.events(s.CONVERSATIONS_STATUS_CHANGED_V1, tenant)) == 1
    assert await outbound.statuses(tenant) == [("sent", "queued")]
    outbox = await outbound.db.fetch(
        "SELECT event_id FROM outbox WHERE source_event_id = $1 ORDER BY seq", first.id
    )
    assert recorded["id"] in {str(r["event_id"]) for r in outbox}


async def test_the_providers_echo_of_our_message_is_folded_into_it(outbound: Outbound) -> None:
    tenant, channel = outbound.tenant(), unique("ch")
    req = request(channel, content=TextContent(body="chegou?"))
    await outbound.send(requested(tenant, req))
    # Evolution echoes an API send, and acks it, before the sender reported the provider id
    await outbound.webhook(tenant, channel, "evolution", evo_echo("3EB0ECHO", "chegou?"))
    receipt = evo_status("3EB0ECHO", "DELIVERY_ACK", "2025-11-20T14:00:02.000Z")
    await outbound.webhook(tenant, channel, "evolution", receipt)
    (conversation,) = await outbound.conversations(tenant)
    assert len(await outbound.timeline(tenant, conversation.id)) == 2

    await outbound.send(succeeded(tenant, req, "3EB0ECHO"))
    (message,) = await outbound.timeline(tenant, conversation.id)
    assert (message.id, message.provider_message_id, message.status) == (
        req.message_id,
        "3EB0ECHO",
        "delivered",
    )
    mine = [
        (e["status"], e["previous"])
        for e in await outbound.events(s.MESSAGES_STATUS_CHANGED_V1, tenant)
        if e["message_id"] == str(req.message_id)
    ]
    assert mine == [("sent", "queued"), ("delivered", "sent")]
    # the echo arriving again after the link stores nothing
    await outbound.webhook(tenant, channel, "evolution", evo_echo("3EB0ECHO", "chegou?"))
    assert len(await outbound.timeline(tenant, conversation.id)) == 1


async def test_send_events_and_receipts_in_any_order_at_once_end_the_same(
    outbound: Outbound,
) -> None:
    """Every message's events, shuffled and published at once, consumed by several workers:
    each message ends read, recorded once, its statuses only moving forward."""
    tenant, channel = outbound.tenant(), unique("ch")
    reqs = [
        request(channel, to=Recipient(phone=f"+55119999{i:05d}"), content=TextContent(body=f"m{i}"))
        for i in range(12)
    ]
    items: list[tuple[str, Any]] = []
    for i, req in enumerate(reqs):
        provider_id = f"wamid.MIX{i}"
        items += [
            ("send", requested(tenant, req)),
            ("send", succeeded(tenant, req, provider_id)),
            ("hook", meta_status(provider_id, "delivered", 2)),
            ("hook", meta_status(provider_id, "read", 3)),
        ]
    random.Random(7).shuffle(items)
    for kind, item in items:
        if kind == "send":
            await outbound.publish_send(item)
        else:
            await outbound.publish_webhook(tenant, channel, "meta", item)
    await outbound.idle(within=30)

    rows = await outbound.db.fetch(
        "SELECT id, status, provider_message_id FROM messages WHERE tenant_id = $1", tenant
    )
    assert {(r["id"], r["status"]) for r in rows} == {(r.message_id, "read") for r in reqs}
    recorded = await outbound.events(s.MESSAGES_OUTBOUND_RECORDED_V1, tenant)
    assert sorted(e["message_id"] for e in recorded) == sorted(str(r.message_id) for r in reqs)
    rank = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}
    by_message: dict[str, list[tuple[str, str]]] = {}
    for e in await outbound.events(s.MESSAGES_STATUS_CHANGED_V1, tenant):
        by_message.setdefault(e["message_id"], []).append((e["previous"], e["status"]))
    assert len(by_message) == len(reqs)
    for changes in by_message.values():  # published after commit: sort by status
        changes.sort(key=lambda change: rank[change[1]])
        statuses = [status for _, status in changes]
        assert [previous for previous, _ in changes] == ["queued", *statuses[:-1]]
        assert statuses[-1] == "read"
        assert len(set(statuses)) == len(statuses)
