"""ingest-raw against real NATS and PostgreSQL: idempotency, statuses, failures, identities."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zapflow.contracts import subjects as s
from zapflow.testing import unique

pytestmark = pytest.mark.integration

PHONE = "+5511999990001"


async def count(ingest: Any, sql: str, *args: Any) -> int:
    value = await ingest.db.fetchval(sql, *args)
    return int(value)


# -- idempotency ------------------------------------------------------------------------------
async def test_same_webhook_twice_stores_one_message_and_publishes_one_event(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    body = webhooks.meta_text("wamid.DUP1", text="pedido 123")
    first = await ingest.send(tenant, channel, "meta", body)
    second = await ingest.send(tenant, channel, "meta", body)  # provider retry: a new raw id
    assert first.id != second.id

    assert await count(ingest, "SELECT count(*) FROM messages WHERE channel_id = $1", channel) == 1
    received = await ingest.events(s.subject(s.MESSAGES_RECEIVED_V1, tenant))
    assert len(received) == 1
    outcomes = await ingest.db.fetch(
        "SELECT outcome FROM webhook_log WHERE event_id = ANY($1::uuid[])", [first.id, second.id]
    )
    assert sorted(r["outcome"] for r in outcomes) == ["stored", "stored"]
    unread = await ingest.db.fetchval(
        "SELECT unread_count FROM conversations WHERE channel_id = $1", channel
    )
    assert unread == 1


async def test_redelivered_raw_event_republishes_the_same_events(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    evt = webhooks.raw_event(tenant, channel, "meta", webhooks.meta_text("wamid.RE1", name="Rita"))
    await ingest.publish(evt)
    await ingest.idle()
    # the same raw event again, as JetStream redelivers it after a crash before the ack
    await ingest.publish(evt, msg_id=unique("redelivery"))
    await ingest.idle()

    outbox = await ingest.db.fetch("SELECT type FROM outbox WHERE source_event_id = $1", evt.id)
    assert sorted(r["type"] for r in outbox) == [
        s.CONTACTS_UPDATED_V1,
        s.CONVERSATIONS_STATUS_CHANGED_V1,
        s.MESSAGES_RECEIVED_V1,
    ]
    for type_name in (s.MESSAGES_RECEIVED_V1, s.CONTACTS_UPDATED_V1):
        events = await ingest.events(s.subject(type_name, tenant))
        assert len(events) == 1, type_name
    assert await count(ingest, "SELECT count(*) FROM messages WHERE channel_id = $1", channel) == 1


# -- statuses ---------------------------------------------------------------------------------
async def test_out_of_order_and_duplicate_statuses_never_regress(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    echo = webhooks.evo_text("3EB0OUT1", text="seu pedido saiu", from_me=True, event="send.message")
    await ingest.send(tenant, channel, "evolution", echo)
    for status, at in (
        ("READ", "2025-11-20T14:03:00.000Z"),
        ("DELIVERY_ACK", "2025-11-20T14:02:00.000Z"),
        ("SERVER_ACK", "2025-11-20T14:01:00.000Z"),
        ("DELIVERY_ACK", "2025-11-20T14:02:00.000Z"),  # duplicate receipt
        ("ERROR", "2025-11-20T14:04:00.000Z"),  # a failure after read cannot be
    ):
        await ingest.send(tenant, channel, "evolution", webhooks.evo_status("3EB0OUT1", status, at))

    row = await ingest.db.fetchrow(
        "SELECT id, status, status_at FROM messages WHERE channel_id = $1", channel
    )
    assert row["status"] == "read"
    assert row["status_at"].isoformat() == "2025-11-20T14:03:00+00:00"
    history = await ingest.db.fetch(
        "SELECT status, applied, message_id FROM message_status_history"
        " WHERE channel_id = $1 ORDER BY at",
        channel,
    )
    assert [(h["status"], h["applied"]) for h in history] == [
        ("sent", False),
        ("delivered", False),
        ("read", True),
        ("failed", False),
    ]
    assert {h["message_id"] for h in history} == {row["id"]}
    changes = await ingest.events(s.subject(s.MESSAGES_STATUS_CHANGED_V1, tenant))
    assert [(e["status"], e["previous"]) for _, e in changes] == [("read", "sent")]


async def test_statuses_before_the_message_are_applied_when_it_appears(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    for status, at in (
        ("DELIVERY_ACK", "2025-11-20T14:02:00.000Z"),
        ("SERVER_ACK", "2025-11-20T14:01:00.000Z"),
    ):
        await ingest.send(
            tenant, channel, "evolution", webhooks.evo_status("3EB0EARLY", status, at)
        )
    assert await ingest.events(s.subject(s.MESSAGES_STATUS_CHANGED_V1, tenant)) == []
    pending = await count(
        ingest,
        "SELECT count(*) FROM message_status_history WHERE channel_id = $1 AND message_id IS NULL",
        channel,
    )
    assert pending == 2

    echo = webhooks.evo_text("3EB0EARLY", text="chegou?", from_me=True, event="send.message")
    await ingest.send(tenant, channel, "evolution", echo)

    row = await ingest.db.fetchrow("SELECT id, status FROM messages WHERE channel_id = $1", channel)
    assert row["status"] == "delivered"
    history = await ingest.db.fetch(
        "SELECT status, applied, message_id FROM message_status_history WHERE channel_id = $1"
        " ORDER BY at",
        channel,
    )
    assert [(h["status"], h["applied"], h["message_id"]) for h in history] == [
        ("sent", False, row["id"]),
        ("delivered", True, row["id"]),
    ]
    changes = await ingest.events(s.subject(s.MESSAGES_STATUS_CHANGED_V1, tenant))
    assert [(e["status"], e["previous"]) for _, e in changes] == [("delivered", "sent")]


async def test_failed_status_is_terminal(ingest: Any, webhooks: Any) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    echo = webhooks.evo_text("3EB0FAIL", from_me=True, event="send.message")
    await ingest.send(tenant, channel, "evolution", echo)
    await ingest.send(
        tenant,
        channel,
        "evolution",
        webhooks.evo_status("3EB0FAIL", "ERROR", "2025-11-20T14:01:00.000Z"),
    )
    await ingest.send(
        tenant,
        channel,
        "evolution",
        webhooks.evo_status("3EB0FAIL", "READ", "2025-11-20T14:02:00.000Z"),
    )
    row = await ingest.db.fetchrow(
        "SELECT status, error_code FROM messages WHERE channel_id = $1", channel
    )
    assert (row["status"], row["error_code"]) == ("failed", "ERROR")


# -- what cannot be stored as is ------------------------------------------------------------
async def test_unknown_message_type_is_stored_as_unsupported_with_raw(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    body = json.loads(webhooks.meta_text("wamid.UNK1"))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["type"] = "hologram"
    message["hologram"] = {"frames": 3}
    del message["text"]
    await ingest.send(tenant, channel, "meta", json.dumps(body).encode())

    row = await ingest.db.fetchrow(
        "SELECT kind, raw_type, raw::text AS raw FROM messages WHERE channel_id = $1", channel
    )
    assert (row["kind"], row["raw_type"]) == ("unsupported", "hologram")
    assert json.loads(row["raw"])["hologram"] == {"frames": 3}


async def test_unparseable_webhook_is_logged_failed_and_dead_lettered(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    evt = await ingest.send(tenant, channel, "meta", b"<html>not json</html>", "text/html")

    log = await ingest.db.fetchrow(
        "SELECT outcome, error FROM webhook_log WHERE event_id = $1", evt.id
    )
    assert log["outcome"] == "failed"
    assert log["error"]
    inbox = await count(ingest, "SELECT count(*) FROM processed_events WHERE event_id = $1", evt.id)
    assert inbox == 0  # a replay after a fix is processed again
    dead = await ingest.events(s.dead_letter(tenant, "ingest"))
    assert len(dead) == 1
    assert dead[0][1]["original_msg_id"] == str(evt.id)


async def test_webhook_without_items_is_logged_ignored(ingest: Any, webhooks: Any) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    body, content_type = webhooks.wire_body("evolution", "connection_update.json")
    evt = await ingest.send(tenant, channel, "evolution", body, content_type)
    log = await ingest.db.fetchrow(
        "SELECT outcome, ignored FROM webhook_log WHERE event_id = $1", evt.id
    )
    assert (log["outcome"], log["ignored"]) == ("ignored", ["connection.update"])


# -- identities -----------------------------------------------------------------------------
async def test_lid_and_phone_of_one_person_merge_into_one_contact(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    lid = "201245678901234@lid"
    await ingest.send(
        tenant,
        channel,
        "evolution",
        webhooks.evo_text("LID1", jid=lid, text="pelo lid", ts=1763647200),
    )
    await ingest.send(
        tenant, channel, "evolution", webhooks.evo_text("PN1", text="pelo numero", ts=1763647300)
    )
    contacts = await ingest.db.fetch(
        "SELECT id, phone, lid FROM contacts WHERE tenant_id = $1 ORDER BY created_at", tenant
    )
    assert [(c["phone"], c["lid"]) for c in contacts] == [(None, lid), (PHONE, None)]
    assert (
        await count(ingest, "SELECT count(*) FROM conversations WHERE tenant_id = $1", tenant) == 2
    )

    # a payload naming both identities reveals they are one person
    both = webhooks.evo_text(
        "BOTH1", jid=lid, alt="5511999990001@s.whatsapp.net", text="os dois", ts=1763647400
    )
    await ingest.send(tenant, channel, "evolution", both)

    live = await ingest.db.fetch(
        "SELECT id, phone, lid FROM contacts WHERE tenant_id = $1 AND merged_into IS NULL", tenant
    )
    assert [(c["phone"], c["lid"]) for c in live] == [(PHONE, lid)]
    survivor = live[0]["id"]
    absorbed = await ingest.db.fetchval(
        "SELECT merged_into FROM contacts WHERE tenant_id = $1 AND id = $2",
        tenant,
        contacts[0]["id"],
    )
    assert absorbed == survivor
    threads = await ingest.db.fetch(
        "SELECT id, unread_count, merged_into FROM conversations WHERE tenant_id = $1"
        " AND merged_into IS NULL",
        tenant,
    )
    assert len(threads) == 1
    assert threads[0]["unread_count"] == 3
    messages = await ingest.db.fetch(
        "SELECT contact_id, conversation_id FROM messages WHERE tenant_id = $1", tenant
    )
    assert {(m["contact_id"], m["conversation_id"]) for m in messages} == {
        (survivor, threads[0]["id"])
    }
    updates = await ingest.events(s.subject(s.CONTACTS_UPDATED_V1, tenant))
    assert [(e["created"], tuple(e["changed"])) for _, e in updates][-1] == (False, ("lid",))


async def test_group_message_goes_to_the_group_conversation_with_its_author(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    body = json.loads(webhooks.evo_text("GRP1", jid="120363025246125888@g.us", text="bom dia"))
    body["data"]["key"].update(participant="5511999990004@s.whatsapp.net")
    body["data"]["pushName"] = "Davi"
    await ingest.send(tenant, channel, "evolution", json.dumps(body).encode())

    row = await ingest.db.fetchrow(
        "SELECT g.kind, g.wa_id, v.group_id, a.phone AS author, a.name AS author_name"
        " FROM messages m JOIN contacts g ON g.id = m.contact_id"
        " JOIN conversations v ON v.id = m.conversation_id"
        " JOIN contacts a ON a.id = m.sender_contact_id WHERE m.channel_id = $1",
        channel,
    )
    assert dict(row) == {
        "kind": "group",
        "wa_id": "120363025246125888@g.us",
        "group_id": "120363025246125888@g.us",
        "author": "+5511999990004",
        "author_name": "Davi",
    }


# -- edits and revokes ----------------------------------------------------------------------
def _edited(webhooks: Any, message_id: str, text: str, ms: int) -> bytes:
    data = {
        "key": {"remoteJid": "5511999990001@s.whatsapp.net", "fromMe": False, "id": message_id},
        "type": "MESSAGE_EDIT",
        "editedMessage": {"extendedTextMessage": {"text": text}},
        "timestampMs": {"low": ms & 0xFFFFFFFF, "high": ms >> 32},
    }
    body: bytes = webhooks.evolution("messages.edited", data)
    return body


def _deleted(webhooks: Any, message_id: str) -> bytes:
    data = {"remoteJid": "5511999990001@s.whatsapp.net", "fromMe": False, "id": message_id}
    body: bytes = webhooks.evolution("messages.delete", data, "2025-11-20T15:00:00.000Z")
    return body


async def test_edits_apply_in_time_order_and_revokes_flag_the_message(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    await ingest.send(tenant, channel, "evolution", webhooks.evo_text("ED1", text="pedido 12"))
    await ingest.send(
        tenant, channel, "evolution", _edited(webhooks, "ED1", "pedido 123", 1763647500000)
    )
    await ingest.send(
        tenant, channel, "evolution", _edited(webhooks, "ED1", "stale", 1763647400000)
    )
    row = await ingest.db.fetchrow(
        "SELECT text, edited FROM messages WHERE channel_id = $1", channel
    )
    assert (row["text"], row["edited"]) == ("pedido 123", True)

    await ingest.send(tenant, channel, "evolution", _deleted(webhooks, "ED1"))
    await ingest.send(tenant, channel, "evolution", _deleted(webhooks, "ED1"))
    row = await ingest.db.fetchrow("SELECT revoked FROM messages WHERE channel_id = $1", channel)
    assert row["revoked"] is True
    assert len(await ingest.events(s.subject(s.MESSAGES_EDITED_V1, tenant))) == 1
    assert len(await ingest.events(s.subject(s.MESSAGES_REVOKED_V1, tenant))) == 1


async def test_edit_and_revoke_before_the_message_apply_when_it_appears(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    await ingest.send(
        tenant, channel, "evolution", _edited(webhooks, "ED2", "corrigido", 1763647500000)
    )
    await ingest.send(tenant, channel, "evolution", webhooks.evo_text("ED2", text="original"))
    row = await ingest.db.fetchrow(
        "SELECT text, edited FROM messages WHERE channel_id = $1", channel
    )
    assert (row["text"], row["edited"]) == ("corrigido", True)
    assert (
        await count(
            ingest, "SELECT count(*) FROM message_pending_changes WHERE channel_id = $1", channel
        )
        == 0
    )


async def test_closed_conversation_reopens_on_a_customer_message(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("ch")
    await ingest.send(tenant, channel, "meta", webhooks.meta_text("wamid.RO1", ts=1763647200))
    await ingest.db.execute(
        "UPDATE conversations SET status = 'closed' WHERE channel_id = $1", channel
    )
    await ingest.send(tenant, channel, "meta", webhooks.meta_text("wamid.RO2", ts=1763647300))

    status = await ingest.db.fetchval(
        "SELECT status FROM conversations WHERE channel_id = $1", channel
    )
    assert status == "open"
    changes = await ingest.events(s.subject(s.CONVERSATIONS_STATUS_CHANGED_V1, tenant))
    assert [(e["status"], e["previous"]) for _, e in changes] == [
        ("open", None),
        ("open", "closed"),
    ]


async def test_receipts_racing_their_messages_are_never_left_pending(
    ingest: Any, webhooks: Any
) -> None:
    """Several workers take receipts and messages at once; every receipt ends applied."""
    tenant, channel = ingest.tenant(), unique("ch")
    n = 60
    batch = []
    for i in range(n):
        status = webhooks.evo_status(f"RACE{i}", "DELIVERY_ACK", "2025-11-20T14:02:00.000Z")
        echo = webhooks.evo_text(f"RACE{i}", text=f"r{i}", from_me=True, event="send.message")
        batch += [
            webhooks.raw_event(tenant, channel, "evolution", status),
            webhooks.raw_event(tenant, channel, "evolution", echo),
        ]
    await ingest.publish(*batch)
    await ingest.idle(within=30)

    statuses = await ingest.db.fetch(
        "SELECT status, count(*) AS n FROM messages WHERE channel_id = $1 GROUP BY status", channel
    )
    assert {r["status"]: r["n"] for r in statuses} == {"delivered": n}
    pending = await count(
        ingest,
        "SELECT count(*) FROM message_status_history WHERE channel_id = $1 AND message_id IS NULL",
        channel,
    )
    assert pending == 0
