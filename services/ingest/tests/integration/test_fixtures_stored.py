"""Every recorded provider webhook, published as a raw event, is stored with the right fields.

The expectation of each fixture is the providers library's own canonical parse: ingest must
store exactly what the adapter read (kind, direction, text, media, times, identities), open the
conversation, log the webhook, and publish one event per new item. Status fixtures name messages
this channel has not stored, so their receipts are kept pending in the history.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from zapflow.contracts.model import Direction
from zapflow.contracts.subjects import MESSAGES_RECEIVED_V1, subject
from zapflow.ingest import ids
from zapflow.providers import get_adapter
from zapflow.providers.scrub import scrub_webhook
from zapflow.testing import unique

pytestmark = pytest.mark.integration


async def test_fixture_is_stored_as_parsed(ingest: Any, webhooks: Any, item_fixture: Any) -> None:
    provider, name = item_fixture
    body, content_type = webhooks.wire_body(provider, name)
    parsed = get_adapter(provider).parse_webhook(body, content_type)
    tenant, channel = ingest.tenant(), unique("ch")

    evt = await ingest.send(tenant, channel, provider, body, content_type)

    log = await ingest.db.fetchrow("SELECT * FROM webhook_log WHERE event_id = $1", evt.id)
    assert (log["outcome"], log["tenant_id"], log["channel_id"]) == ("stored", tenant, channel)
    assert bytes(log["body"]) == scrub_webhook(body, content_type)  # no provider secret kept
    if provider == "evolution":
        apikey = json.loads(body)["apikey"]
        assert apikey.encode() not in bytes(log["body"])
    for m in parsed.messages:
        row = await ingest.db.fetchrow(
            "SELECT m.*, m.media::text AS media_json, c.phone, c.lid, c.name, v.status AS conv"
            " FROM messages m JOIN contacts c ON c.id = m.contact_id"
            " JOIN conversations v ON v.id = m.conversation_id"
            " WHERE m.channel_id = $1 AND m.provider_message_id = $2",
            channel,
            m.provider_message_id,
        )
        assert row is not None, m.provider_message_id
        assert row["id"] == ids.message_id(channel, m.provider_message_id)
        assert row["tenant_id"] == tenant
        assert (row["kind"], row["direction"], row["from_me"]) == (
            m.kind.value,
            m.direction.value,
            m.from_me,
        )
        assert row["text"] == m.text
        assert row["sent_at"] == m.sent_at
        assert row["reply_to"] == m.reply_to
        assert (row["phone"], row["lid"]) == (m.contact.phone, m.contact.lid)
        if m.direction is Direction.INBOUND:
            assert row["name"] == m.contact.name
        assert row["conv"] == "open"
        if m.media is not None:
            stored = json.loads(row["media_json"])
            assert stored["mime_type"] == m.media.mime_type
            assert stored["caption"] == m.media.caption
            assert stored["url"] == m.media.url
        assert row["status"] == ("sent" if m.from_me else None)
    for s in parsed.statuses:
        hist = await ingest.db.fetchrow(
            "SELECT * FROM message_status_history WHERE channel_id = $1"
            " AND provider_message_id = $2",
            channel,
            s.provider_message_id,
        )
        assert hist is not None
        assert (hist["status"], hist["at"], hist["message_id"]) == (s.status.value, s.at, None)
        assert (hist["error_code"], hist["error_text"]) == (s.error_code, s.error_text)

    received = await ingest.events(subject(MESSAGES_RECEIVED_V1, tenant))
    assert len(received) == len(parsed.messages)
    for (headers, event), m in zip(received, parsed.messages, strict=True):
        assert event["message"]["provider_message_id"] == m.provider_message_id
        assert event["channel_id"] == channel
        assert event["provider"] == provider
        assert event["causation_id"] == str(evt.id)
        assert headers["Nats-Msg-Id"] == event["id"]
