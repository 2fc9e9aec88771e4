"""Storing the items of one parsed webhook inside the ingest-raw transaction.

Messages go to their contact's conversation on the channel (opened on the first message,
reopened by a customer's message), once per (channel, provider message id); receipts, edits and
revokes go through ``pg_timeline``; every change is collected as an event for the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID, uuid4

from zapflow.contracts.conversations.v1 import ConversationStatus
from zapflow.contracts.envelope import Event
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.model import Direction, Message, MessageKind, Party
from zapflow.ingest import events, ids
from zapflow.ingest.adapters import pgjson
from zapflow.ingest.adapters.pg_contacts import ContactResolver
from zapflow.ingest.adapters.pg_timeline import Timeline
from zapflow.ingest.adapters.pgretry import Race
from zapflow.ingest.adapters.pgtypes import Conn
from zapflow.ingest.domain import has_identity, reopens
from zapflow.providers import ParsedWebhook

MEDIA_KINDS: Final = frozenset(
    {
        MessageKind.IMAGE,
        MessageKind.AUDIO,
        MessageKind.VIDEO,
        MessageKind.DOCUMENT,
        MessageKind.STICKER,
    }
)
NO_IDENTITY: Final = "message without contact identity"

OPEN_THREAD: Final = """
INSERT INTO conversations (id, tenant_id, channel_id, contact_id, group_id, last_message_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, channel_id, contact_id) WHERE merged_into IS NULL DO NOTHING
RETURNING id
"""
# One round trip for the common case: lock the contact's conversation on the channel, insert the
# message unless stored before, move the conversation forward (last activity, unread count,
# reopened by a customer message) only when it was inserted, and tell whether receipts or edits
# for this provider id were waiting. No conversation yet: conversation_id comes back NULL.
_STORE_MESSAGE: Final = """
WITH conv AS (
  SELECT id, status FROM conversations
  WHERE tenant_id = $2 AND channel_id = $3 AND contact_id = $4 AND merged_into IS NULL
  FOR NO KEY UPDATE
), ins AS (
  INSERT INTO messages
    (id, tenant_id, channel_id, conversation_id, contact_id, sender_contact_id,
     provider_message_id, direction, kind, from_me, text, media, content, reply_to, forwarded,
     status, status_at, raw_type, raw, sent_at, source_event_id)
  SELECT $1, $2, $3, conv.id, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, $14,
         $15, $16, $17, $18::jsonb, $19, $20
  FROM conv
  ON CONFLICT ON CONSTRAINT messages_provider_id DO NOTHING
  RETURNING id
), bump AS (
  UPDATE conversations c SET
    last_message_at = greatest(c.last_message_at, $19),
    last_inbound_at = CASE WHEN $21 THEN greatest(c.last_inbound_at, $19)
                      ELSE c.last_inbound_at END,
    unread_count = c.unread_count + (CASE WHEN $21 THEN 1 ELSE 0 END),
    status = CASE WHEN $21 THEN 'open' ELSE c.status END,
    updated_at = now()
  FROM conv
  WHERE c.id = conv.id AND EXISTS (SELECT 1 FROM ins)
  RETURNING c.id
)
SELECT conv.id AS conversation_id, conv.status AS previous_status,
  EXISTS (SELECT 1 FROM ins) AS inserted,
  EXISTS (SELECT 1 FROM message_status_history h
          WHERE h.channel_id = $3 AND h.provider_message_id = $6 AND h.message_id IS NULL)
  OR EXISTS (SELECT 1 FROM message_pending_changes p
             WHERE p.channel_id = $3 AND p.provider_message_id = $6) AS pending
FROM (SELECT 1) AS one LEFT JOIN conv ON true
"""
_QUEUE_MEDIA: Final = """
INSERT INTO media_jobs
  (message_id, tenant_id, channel_id, provider, provider_message_id, source_event_id, media)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
ON CONFLICT (message_id) DO NOTHING
"""


@dataclass(frozen=True)
class _Stored:
    """What storing one message did."""

    conversation_id: UUID
    opened: bool  # the conversation was created for it
    previous: ConversationStatus  # the conversation's status before
    inserted: bool  # False: stored before, nothing changed
    pending: bool  # receipts, edits or revokes were waiting for it


class WebhookItems:
    """The work of one raw webhook inside its transaction; collects the events to publish."""

    def __init__(self, conn: Conn, src: WebhookReceived) -> None:
        self.conn = conn
        self.src = src
        self.contacts = ContactResolver(conn, src.tenant_id)
        self.timeline = Timeline(conn, src)
        self.events: list[Event] = []
        self.skipped: list[str] = []
        self.media_jobs = 0

    async def all(self, parsed: ParsedWebhook) -> None:
        for i, message in enumerate(parsed.messages):
            await self.message(f"message/{i}", message)
        for i, status in enumerate(parsed.statuses):
            self.events += await self.timeline.status(f"status/{i}", status)
        for i, edit in enumerate(parsed.edits):
            self.events += await self.timeline.edit(f"edit/{i}", edit)
        for i, revoke in enumerate(parsed.revokes):
            self.events += await self.timeline.revoke(f"revoke/{i}", revoke)
        for i, party in enumerate(parsed.contacts):
            if has_identity(party):
                await self.contact(f"contact/{i}", party)

    async def contact(self, key: str, party: Party, *, group: bool = False) -> UUID:
        contact_id, change = await self.contacts.resolve(party, "group" if group else "person")
        if change is not None:
            self.events.append(
                events.contact_updated(
                    self.src,
                    key,
                    contact_id=contact_id,
                    party=change.party,
                    created=change.created,
                    changed=change.changed,
                )
            )
        return contact_id

    async def message(self, key: str, m: Message) -> None:
        if not has_identity(m.contact):
            self.skipped.append(NO_IDENTITY)
            return
        party = Party(wa_id=m.group.id, name=m.group.name) if m.group else m.contact
        contact_id = await self.contact(f"{key}/contact", party, group=m.group is not None)
        sender_id = None
        if m.sender is not None and has_identity(m.sender):
            sender_id = await self.contact(f"{key}/sender", m.sender)
        message_id = ids.message_id(self.src.channel_id, m.provider_message_id)
        stored = await self.store(message_id, contact_id, sender_id, m)
        if not stored.inserted:
            return  # a message stored before: nothing changes, nothing is published
        inbound = m.direction is Direction.INBOUND
        if stored.opened or reopens(stored.previous, inbound=inbound):
            self.events.append(
                events.conversation_opened(
                    self.src,
                    f"{key}/conversation",
                    conversation_id=stored.conversation_id,
                    contact_id=contact_id,
                    previous=None if stored.opened else stored.previous,
                )
            )
        self.events.append(
            events.message_received(
                self.src,
                key,
                message_id=message_id,
                conversation_id=stored.conversation_id,
                contact_id=contact_id,
                message=m,
            )
        )
        if stored.pending:
            self.events += await self.timeline.apply_pending(key, m.provider_message_id)
        if m.media is not None and m.kind in MEDIA_KINDS:
            await self.conn.execute(
                _QUEUE_MEDIA,
                message_id,
                self.src.tenant_id,
                self.src.channel_id,
                self.src.provider,
                m.provider_message_id,
                self.src.id,
                pgjson.dumps(m.media),
            )
            self.media_jobs += 1

    async def store(
        self, message_id: UUID, contact_id: UUID, sender_id: UUID | None, m: Message
    ) -> _Stored:
        """Insert the message in its conversation (opened if needed) unless stored before."""
        args = self._message_args(message_id, contact_id, sender_id, m)
        row = await self.conn.fetchrow(_STORE_MESSAGE, *args)
        opened = False
        if row is not None and row["conversation_id"] is None:
            src = self.src
            group_id = m.group.id if m.group else None
            new_id = await self.conn.fetchval(
                OPEN_THREAD,
                uuid4(),
                src.tenant_id,
                src.channel_id,
                contact_id,
                group_id,
                m.sent_at,
            )
            if new_id is None:
                raise Race("conversation created concurrently")
            opened = True
            row = await self.conn.fetchrow(_STORE_MESSAGE, *args)
        assert row is not None
        assert row["conversation_id"] is not None
        return _Stored(
            conversation_id=row["conversation_id"],
            opened=opened,
            previous=ConversationStatus(row["previous_status"]),
            inserted=row["inserted"],
            pending=row["inserted"] and row["pending"],
        )

    def _message_args(
        self, message_id: UUID, contact_id: UUID, sender_id: UUID | None, m: Message
    ) -> tuple[object, ...]:
        content = {
            name: _plain(value)
            for name, value in (
                ("location", m.location),
                ("contacts", list(m.contacts) or None),
                ("reaction", m.reaction),
                ("interactive", m.interactive),
                ("group", m.group),
                ("sender", m.sender),
            )
            if value is not None
        }
        return (
            message_id,
            self.src.tenant_id,
            self.src.channel_id,
            contact_id,
            sender_id,
            m.provider_message_id,
            m.direction.value,
            m.kind.value,
            m.from_me,
            pgjson.text(m.text),
            pgjson.dumps(m.media),
            pgjson.dumps(content) if content else None,
            pgjson.text(m.reply_to),
            m.forwarded,
            "sent" if m.from_me else None,
            m.sent_at if m.from_me else None,
            pgjson.text(m.raw_type),
            pgjson.dumps(m.raw),
            m.sent_at,
            self.src.id,
            m.direction is Direction.INBOUND,
        )


def _plain(value: object) -> object:
    """JSON-ready form of a content part (a contract, or a list of contracts)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump is not None else value
