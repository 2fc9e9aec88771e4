"""The read-side responders over real NATS: pagination, filters, search, tenant isolation."""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from nats.aio.msg import Msg
from pydantic import BaseModel

from zapflow.contracts.queries import ERROR_HEADER, QueryFailure, QuerySpec
from zapflow.contracts.queries import ingest_v1 as q
from zapflow.testing import unique

pytestmark = pytest.mark.integration

R = TypeVar("R", bound=BaseModel)


async def request(ingest: Any, spec: QuerySpec[Any, Any], body: dict[str, Any]) -> Msg:
    subject = spec.subject_for("gateway")  # the gateway is the only caller
    return await ingest.nc.request(subject, json.dumps(body, default=str).encode(), timeout=5)


async def ask(ingest: Any, spec: QuerySpec[Any, Any], body: dict[str, Any], reply: type[R]) -> R:
    msg = await request(ingest, spec, body)
    assert not (msg.headers or {}).get(ERROR_HEADER), msg.data
    return reply.model_validate_json(msg.data)


async def failure(ingest: Any, spec: QuerySpec[Any, Any], body: dict[str, Any]) -> QueryFailure:
    msg = await request(ingest, spec, body)
    assert msg.headers is not None
    failed = QueryFailure.model_validate_json(msg.data)
    assert msg.headers[ERROR_HEADER] == failed.code
    return failed


async def seed_inbox(ingest: Any, webhooks: Any, tenant: str, channel: str, n: int) -> list[str]:
    """``n`` customers writing once each, a minute apart; returns their phones, oldest first."""
    phones = [f"55119{i:08d}" for i in range(n)]
    for i, phone in enumerate(phones):
        body = webhooks.meta_text(
            f"wamid.{channel}.{i}",
            phone=phone,
            text=f"oi {i}",
            ts=1763647200 + 60 * i,
            name=f"Cliente {i}",
        )
        await ingest.send(tenant, channel, "meta", body)
    return ["+" + p for p in phones]


async def test_conversation_list_pages_newest_first_without_gaps(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    phones = await seed_inbox(ingest, webhooks, tenant, channel, 5)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await ask(
            ingest,
            q.LIST_CONVERSATIONS,
            {"tenant_id": tenant, "limit": 2, "cursor": cursor},
            q.ConversationsPage,
        )
        pages += 1
        seen += [c.contact.phone or "" for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(phones))


async def test_conversation_filters(ingest: Any, webhooks: Any) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    other_channel = unique("ch")
    await seed_inbox(ingest, webhooks, tenant, channel, 4)
    await seed_inbox(ingest, webhooks, tenant, other_channel, 1)
    ids = [
        r["id"]
        for r in await ingest.db.fetch(
            "SELECT id FROM conversations WHERE channel_id = $1 ORDER BY last_message_at", channel
        )
    ]
    await ingest.db.execute("UPDATE conversations SET status = 'closed' WHERE id = $1", ids[0])
    await ingest.db.execute("UPDATE conversations SET assignee = 'op-7' WHERE id = $1", ids[1])
    await ingest.db.execute("UPDATE conversations SET unread_count = 0 WHERE id = $1", ids[2])

    async def listed(**filters: Any) -> list[Any]:
        page = await ask(
            ingest, q.LIST_CONVERSATIONS, {"tenant_id": tenant, **filters}, q.ConversationsPage
        )
        return [c.id for c in page.items]

    assert await listed(status="closed") == [ids[0]]
    assert set(await listed(status="open", channel_id=channel)) == set(ids[1:])
    assert await listed(assignee="op-7") == [ids[1]]
    assert set(await listed(unassigned=True, channel_id=channel)) == {ids[0], ids[2], ids[3]}
    assert await listed(unread=False) == [ids[2]]
    assert len(await listed(unread=True)) == 4
    assert len(await listed(channel_id=other_channel)) == 1
    assert len(await listed()) == 5


async def test_timeline_pages_and_tenant_isolation(ingest: Any, webhooks: Any) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    for i in range(5):
        await ingest.send(
            tenant,
            channel,
            "meta",
            webhooks.meta_text(f"wamid.TL{i}", text=f"m{i}", ts=1763647200 + i),
        )
    conversation = await ingest.db.fetchval(
        "SELECT id FROM conversations WHERE channel_id = $1", channel
    )

    texts: list[str | None] = []
    cursor = None
    while True:
        page = await ask(
            ingest,
            q.LIST_MESSAGES,
            {"tenant_id": tenant, "conversation_id": conversation, "limit": 2, "cursor": cursor},
            q.MessagesPage,
        )
        assert page.found
        texts += [m.text for m in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert texts == ["m4", "m3", "m2", "m1", "m0"]

    other = ingest.tenant()
    foreign = await ask(
        ingest,
        q.LIST_MESSAGES,
        {"tenant_id": other, "conversation_id": conversation},
        q.MessagesPage,
    )
    assert (foreign.found, foreign.items) == (False, ())
    gone = await ask(
        ingest,
        q.GET_CONVERSATION,
        {"tenant_id": other, "conversation_id": conversation},
        q.ConversationReply,
    )
    assert gone.conversation is None
    mine = await ask(
        ingest,
        q.GET_CONVERSATION,
        {"tenant_id": tenant, "conversation_id": conversation},
        q.ConversationReply,
    )
    assert mine.conversation is not None
    assert mine.conversation.unread_count == 5


async def test_contact_lookup_by_phone_and_id(ingest: Any, webhooks: Any) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    await ingest.send(
        tenant, channel, "meta", webhooks.meta_text("wamid.CT1", phone="5511988887777", name="Beto")
    )
    by_phone = await ask(
        ingest, q.GET_CONTACT, {"tenant_id": tenant, "phone": "+5511988887777"}, q.ContactReply
    )
    assert by_phone.contact is not None
    assert by_phone.contact.name == "Beto"
    by_id = await ask(
        ingest,
        q.GET_CONTACT,
        {"tenant_id": tenant, "contact_id": by_phone.contact.id},
        q.ContactReply,
    )
    assert by_id.contact == by_phone.contact
    foreign = await ask(
        ingest,
        q.GET_CONTACT,
        {"tenant_id": ingest.tenant(), "contact_id": by_phone.contact.id},
        q.ContactReply,
    )
    assert foreign.contact is None
    both = await failure(
        ingest,
        q.GET_CONTACT,
        {"tenant_id": tenant, "contact_id": by_phone.contact.id, "phone": "+5511988887777"},
    )
    assert both.code == "bad_request"


async def test_search_is_full_text_tenant_scoped_and_skips_revoked(
    ingest: Any, webhooks: Any
) -> None:
    tenant, other, channel = ingest.tenant(), ingest.tenant(), unique("ch")
    texts = [
        "Qual o horário da loja?",
        "Meu pedido chegou quebrado",
        "horário de domingo?",
        "obrigado",
    ]
    for i, text in enumerate(texts):
        await ingest.send(
            tenant, channel, "evolution", webhooks.evo_text(f"S{i}", text=text, ts=1763647200 + i)
        )
    await ingest.send(
        other, unique("ch"), "meta", webhooks.meta_text("wamid.OTHER", text="horário")
    )

    async def search(query: str, **extra: Any) -> q.MessagesPage:
        page = await ask(
            ingest,
            q.SEARCH_MESSAGES,
            {"tenant_id": tenant, "query": query, **extra},
            q.MessagesPage,
        )
        return page

    hits = await search("horário")
    assert [m.text for m in hits.items] == ["horário de domingo?", "Qual o horário da loja?"]
    first = await search("horário", limit=1)
    rest = await search("horário", limit=1, cursor=first.next_cursor)
    assert [m.text for m in (*first.items, *rest.items)] == [m.text for m in hits.items]
    assert rest.next_cursor is None
    assert [m.text for m in (await search('"pedido chegou"')).items] == [texts[1]]
    assert (await search("horário -domingo")).items[0].text == texts[0]

    await ingest.send(
        tenant,
        channel,
        "evolution",
        webhooks.evolution(
            "messages.delete",
            {"remoteJid": "5511999990001@s.whatsapp.net", "fromMe": False, "id": "S2"},
        ),
    )
    assert [m.text for m in (await search("horário")).items] == [texts[0]]


async def test_invalid_requests_get_bad_request(ingest: Any) -> None:
    tenant = ingest.tenant()
    bad_cursor = await failure(
        ingest, q.LIST_CONVERSATIONS, {"tenant_id": tenant, "cursor": "bm90LWEtY3Vyc29y"}
    )
    assert (bad_cursor.code, bad_cursor.message) == ("bad_request", "invalid cursor")
    no_tenant = await failure(ingest, q.GET_CONVERSATION, {"conversation_id": str(uuid4())})
    assert no_tenant.code == "bad_request"
    assert "tenant_id" in no_tenant.message
    too_big = await failure(ingest, q.LIST_CONVERSATIONS, {"tenant_id": tenant, "limit": 10_000})
    assert too_big.code == "bad_request"


async def test_media_query_without_media_is_none(ingest: Any) -> None:
    reply = await ask(
        ingest,
        q.GET_MEDIA,
        {"tenant_id": ingest.tenant(), "message_id": str(uuid4())},
        q.MediaChunk,
    )
    assert (reply.state, reply.media, reply.data_b64) == ("none", None, "")
    assert base64.b64decode(reply.data_b64) == b""
