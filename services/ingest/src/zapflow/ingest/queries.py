"""Answers of ``zapflow.contracts.queries.ingest_v1``, served by the runtime's responder.

``zapflow.runtime.rpc`` validates each request, checks the caller (only the gateway may ask),
bounds concurrency so a slow search does not hold up a timeline, and maps failures to the common
reply envelope; an invalid cursor is the caller's ``bad_request``.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator

from zapflow.contracts.queries import ingest_v1 as q
from zapflow.ingest.adapters.pg_queries import PgReadStore
from zapflow.ingest.cursors import BadCursor
from zapflow.ingest.ports import MediaStore
from zapflow.runtime.rpc import QueryRefused
from zapflow.runtime.service import Service

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _cursor_errors() -> Iterator[None]:
    try:
        yield
    except BadCursor:
        raise QueryRefused("bad_request", "invalid cursor") from None


class QueryHandlers:
    """One coroutine per query: request contract in, reply contract out."""

    def __init__(self, store: PgReadStore, media: MediaStore) -> None:
        self._store = store
        self._media = media

    async def serve(self, svc: Service, *, concurrency: int) -> None:
        """Answer every ingest query on ``svc`` until it stops."""
        await svc.serve(q.LIST_CONVERSATIONS, self.list_conversations, concurrency=concurrency)
        await svc.serve(q.GET_CONVERSATION, self.get_conversation, concurrency=concurrency)
        await svc.serve(q.LIST_MESSAGES, self.list_messages, concurrency=concurrency)
        await svc.serve(q.SEARCH_MESSAGES, self.search_messages, concurrency=concurrency)
        await svc.serve(q.GET_CONTACT, self.get_contact, concurrency=concurrency)
        await svc.serve(q.GET_MEDIA, self.get_media, concurrency=concurrency)

    async def list_conversations(
        self, req: q.ListConversationsRequest, _caller: str
    ) -> q.ConversationsPage:
        with _cursor_errors():
            return await self._store.list_conversations(req)

    async def get_conversation(
        self, req: q.GetConversationRequest, _caller: str
    ) -> q.ConversationReply:
        found = await self._store.get_conversation(req.tenant_id, req.conversation_id)
        return q.ConversationReply(conversation=found)

    async def list_messages(self, req: q.ListMessagesRequest, _caller: str) -> q.MessagesPage:
        with _cursor_errors():
            return await self._store.list_messages(req)

    async def search_messages(self, req: q.SearchMessagesRequest, _caller: str) -> q.MessagesPage:
        with _cursor_errors():
            return await self._store.search_messages(req)

    async def get_contact(self, req: q.GetContactRequest, _caller: str) -> q.ContactReply:
        return q.ContactReply(contact=await self._store.get_contact(req))

    async def get_media(self, req: q.GetMediaRequest, _caller: str) -> q.MediaChunk:
        state, key, info = await self._store.media(req.tenant_id, req.message_id)
        if key is None or info is None:
            return q.MediaChunk(state=state)
        try:
            data = await self._media.read(key, req.offset, req.length)
        except KeyError:
            logger.error(
                "stored media missing from the store", extra={"message_id": str(req.message_id)}
            )
            return q.MediaChunk(state="failed")
        return q.MediaChunk(
            state="stored",
            media=info,
            offset=req.offset,
            data_b64=base64.b64encode(data).decode(),
            eof=req.offset + len(data) >= info.size_bytes,
        )
