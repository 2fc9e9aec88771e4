"""Read side in PostgreSQL: conversation lists, timelines, contacts, search, media metadata.

Every statement is scoped by ``tenant_id``. Merged contacts and conversations (see
``pg_contacts``) resolve to the row they were merged into, so ids handed out earlier keep
working. Lists fetch one row more than asked to know whether a next page exists; the optional
filters are composed into the statement (never ``$n IS NULL OR …``), so each shape gets a plan
that uses the keyset indexes.
"""

from __future__ import annotations

from typing import Any, Final, Literal
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter

from zapflow.contracts.common import Actor
from zapflow.contracts.content import OutboundContent
from zapflow.contracts.model import InteractiveReply, Location, Media, Reaction, SharedContact
from zapflow.contracts.queries.ingest_v1 import (
    ContactView,
    ConversationsPage,
    ConversationView,
    GetContactRequest,
    ListConversationsRequest,
    ListMessagesRequest,
    MediaInfo,
    MessagesPage,
    MessageView,
    SearchMessagesRequest,
)
from zapflow.ingest import cursors
from zapflow.ingest.adapters import pgjson

MediaState = Literal["stored", "pending", "failed", "none"]
_OUTBOUND_CONTENT: Final[TypeAdapter[OutboundContent]] = TypeAdapter(OutboundContent)

_CONVERSATION_COLUMNS: Final = """
c.id, c.channel_id, c.group_id, c.status, c.assignee, c.unread_count, c.last_message_at,
c.last_inbound_at, c.created_at, k.id AS contact_id, k.kind, k.phone, k.wa_id, k.lid, k.name,
k.user_id, k.created_at AS contact_created_at, k.updated_at AS contact_updated_at
"""
_MESSAGE_COLUMNS: Final = """
m.id, m.conversation_id, m.channel_id, m.contact_id, m.sender_contact_id,
m.provider_message_id, m.direction, m.kind, m.from_me, m.text, m.media::text AS media,
m.content::text AS content, m.reply_to, m.forwarded, m.status, m.status_at, m.error_code,
m.error_text, m.edited, m.edited_at, m.revoked, m.revoked_at, m.raw_type, m.sent_at,
m.stored_at, m.status_reason, m.origin, m.campaign_id, m.recipient_id,
m.requested_by::text AS requested_by
"""
_LIVE_CONVERSATION: Final = """
SELECT coalesce(merged_into, id) FROM conversations WHERE tenant_id = $1 AND id = $2
"""
_GET_CONVERSATION: Final = f"""
SELECT {_CONVERSATION_COLUMNS}
FROM conversations c JOIN contacts k ON k.id = c.contact_id
WHERE c.tenant_id = $1 AND c.id = $2
"""
_CONTACT_COLUMNS: Final = "id, kind, phone, wa_id, lid, name, user_id, created_at, updated_at"
_CONTACT_BY_ID: Final = f"""
SELECT {_CONTACT_COLUMNS} FROM contacts
WHERE tenant_id = $1 AND id = (
  SELECT coalesce(merged_into, id) FROM contacts WHERE tenant_id = $1 AND id = $2)
"""
_CONTACT_BY_PHONE: Final = f"""
SELECT {_CONTACT_COLUMNS} FROM contacts
WHERE tenant_id = $1 AND phone = $2 AND merged_into IS NULL
"""
_MEDIA: Final = """
SELECT j.state, d.key, d.mime_type, d.size_bytes, d.sha256, d.filename, d.stored_at
FROM media_jobs j LEFT JOIN media d ON d.message_id = j.message_id
WHERE j.tenant_id = $1 AND j.message_id = $2
"""


class PgReadStore:
    """The queries of ``zapflow.contracts.queries.ingest_v1``; raises ``cursors.BadCursor``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_conversations(self, req: ListConversationsRequest) -> ConversationsPage:
        where = _Where(req.tenant_id, "c.tenant_id").add("c.merged_into IS NULL")
        if req.status is not None:
            where.add("c.status = {}", req.status.value)
        if req.assignee is not None:
            where.add("c.assignee = {}", req.assignee)
        if req.unassigned:
            where.add("c.assignee IS NULL")
        if req.unread is not None:
            where.add("c.unread_count > 0" if req.unread else "c.unread_count = 0")
        if req.channel_id is not None:
            where.add("c.channel_id = {}", req.channel_id)
        where.after(req.cursor, "c.last_message_at", "c.id")
        rows = await self._pool.fetch(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c"
            f" JOIN contacts k ON k.id = c.contact_id WHERE {where.sql}"
            f" ORDER BY c.last_message_at DESC, c.id DESC LIMIT {req.limit + 1}",
            *where.args,
        )
        page = rows[: req.limit]
        more = len(rows) > req.limit
        return ConversationsPage(
            items=tuple(_conversation(r) for r in page),
            next_cursor=cursors.encode(page[-1]["last_message_at"], page[-1]["id"])
            if more
            else None,
        )

    async def get_conversation(
        self, tenant_id: str, conversation_id: UUID
    ) -> ConversationView | None:
        live = await self._pool.fetchval(_LIVE_CONVERSATION, tenant_id, conversation_id)
        if live is None:
            return None
        row = await self._pool.fetchrow(_GET_CONVERSATION, tenant_id, live)
        return None if row is None else _conversation(row)

    async def list_messages(self, req: ListMessagesRequest) -> MessagesPage:
        live = await self._pool.fetchval(_LIVE_CONVERSATION, req.tenant_id, req.conversation_id)
        if live is None:
            return MessagesPage(found=False)
        where = _Where(req.tenant_id, "m.tenant_id").add("m.conversation_id = {}", live)
        return await self._messages(where, req.cursor, req.limit)

    async def search_messages(self, req: SearchMessagesRequest) -> MessagesPage:
        where = _Where(req.tenant_id, "m.tenant_id")
        where.add("m.search @@ websearch_to_tsquery('simple', {})", pgjson.text(req.query))
        where.add("NOT m.revoked")
        if req.channel_id is not None:
            where.add("m.channel_id = {}", req.channel_id)
        if req.conversation_id is not None:
            live = await self._pool.fetchval(_LIVE_CONVERSATION, req.tenant_id, req.conversation_id)
            where.add("m.conversation_id = {}", live or req.conversation_id)
        return await self._messages(where, req.cursor, req.limit)

    async def _messages(self, where: _Where, cursor: str | None, limit: int) -> MessagesPage:
        where.after(cursor, "m.sent_at", "m.id")
        rows = await self._pool.fetch(
            f"SELECT {_MESSAGE_COLUMNS}, (d.key IS NOT NULL) AS media_stored FROM messages m"
            f" LEFT JOIN media d ON d.message_id = m.id WHERE {where.sql}"
            f" ORDER BY m.sent_at DESC, m.id DESC LIMIT {limit + 1}",
            *where.args,
        )
        page = rows[:limit]
        more = len(rows) > limit
        return MessagesPage(
            items=tuple(_message(r) for r in page),
            next_cursor=cursors.encode(page[-1]["sent_at"], page[-1]["id"]) if more else None,
        )

    async def get_contact(self, req: GetContactRequest) -> ContactView | None:
        if req.contact_id is not None:
            row = await self._pool.fetchrow(_CONTACT_BY_ID, req.tenant_id, req.contact_id)
        else:
            row = await self._pool.fetchrow(_CONTACT_BY_PHONE, req.tenant_id, req.phone)
        return None if row is None else _contact(row, "")

    async def media(
        self, tenant_id: str, message_id: UUID
    ) -> tuple[MediaState, str | None, MediaInfo | None]:
        """The download state of a message's media, its store key and metadata once stored."""
        row = await self._pool.fetchrow(_MEDIA, tenant_id, message_id)
        if row is None:
            return "none", None, None
        if row["key"] is None:
            return row["state"], None, None
        info = MediaInfo(
            message_id=message_id,
            mime_type=row["mime_type"],
            size_bytes=row["size_bytes"],
            sha256=row["sha256"],
            filename=row["filename"],
            stored_at=row["stored_at"],
        )
        return "stored", row["key"], info


class _Where:
    """A conjunction of predicates with numbered parameters, starting with the tenant."""

    def __init__(self, tenant_id: str, tenant_column: str) -> None:
        self.args: list[Any] = [tenant_id]
        self._parts = [f"{tenant_column} = $1"]

    @property
    def sql(self) -> str:
        return " AND ".join(self._parts)

    def add(self, predicate: str, *values: Any) -> _Where:
        """``predicate`` with one ``{}`` per value, replaced by the value's placeholder."""
        placeholders = []
        for value in values:
            self.args.append(value)
            placeholders.append(f"${len(self.args)}")
        self._parts.append(predicate.format(*placeholders))
        return self

    def after(self, cursor: str | None, at_column: str, id_column: str) -> None:
        if cursor is not None:
            at, row_id = cursors.decode(cursor)
            self.add(f"({at_column}, {id_column}) < ({{}}, {{}})", at, row_id)


def _contact(row: asyncpg.Record, prefix: str) -> ContactView:
    return ContactView(
        id=row[f"{prefix}id"],
        kind=row["kind"],
        phone=row["phone"],
        wa_id=row["wa_id"],
        lid=row["lid"],
        name=row["name"],
        user_id=row["user_id"],
        created_at=row[f"{prefix}created_at"],
        updated_at=row[f"{prefix}updated_at"],
    )


def _conversation(row: asyncpg.Record) -> ConversationView:
    return ConversationView(
        id=row["id"],
        channel_id=row["channel_id"],
        contact=_contact(row, "contact_"),
        group_id=row["group_id"],
        status=row["status"],
        assignee=row["assignee"],
        unread_count=row["unread_count"],
        last_message_at=row["last_message_at"],
        last_inbound_at=row["last_inbound_at"],
        created_at=row["created_at"],
    )


def _message(row: asyncpg.Record) -> MessageView:
    content: dict[str, Any] = pgjson.loads(row["content"]) or {}
    media = pgjson.loads(row["media"])
    requested_by = pgjson.loads(row["requested_by"])
    outbound = content.get("outbound")
    return MessageView(
        id=row["id"],
        conversation_id=row["conversation_id"],
        channel_id=row["channel_id"],
        contact_id=row["contact_id"],
        sender_contact_id=row["sender_contact_id"],
        provider_message_id=row["provider_message_id"],
        direction=row["direction"],
        kind=row["kind"],
        from_me=row["from_me"],
        text=row["text"],
        media=Media.model_validate(media) if media else None,
        media_stored=row["media_stored"],
        location=Location.model_validate(content["location"]) if "location" in content else None,
        contacts=tuple(SharedContact.model_validate(c) for c in content.get("contacts", ())),
        reaction=Reaction.model_validate(content["reaction"]) if "reaction" in content else None,
        interactive=(
            InteractiveReply.model_validate(content["interactive"])
            if "interactive" in content
            else None
        ),
        reply_to=row["reply_to"],
        forwarded=row["forwarded"],
        status=row["status"],
        status_at=row["status_at"],
        error_code=row["error_code"],
        error_text=row["error_text"],
        edited=row["edited"],
        edited_at=row["edited_at"],
        revoked=row["revoked"],
        revoked_at=row["revoked_at"],
        raw_type=row["raw_type"],
        sent_at=row["sent_at"],
        stored_at=row["stored_at"],
        status_reason=row["status_reason"],
        origin=row["origin"],
        campaign_id=row["campaign_id"],
        recipient_id=row["recipient_id"],
        requested_by=Actor.model_validate(requested_by) if requested_by else None,
        outbound_content=_OUTBOUND_CONTENT.validate_python(outbound) if outbound else None,
    )
