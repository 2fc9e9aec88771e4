"""NATS responders of ``zapflow.contracts.queries.ingest_v1`` (queue group ``ingest``).

Each subscription hands requests to a task of their own, bounded by a semaphore, so a slow
search does not hold up a timeline. A request that does not validate gets a ``bad_request``
reply; an unexpected failure is logged once and answered ``internal`` (the caller does not wait
for its timeout).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Final

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import BaseModel, ValidationError

from zapflow.contracts.queries import ingest_v1 as q
from zapflow.ingest.adapters.pg_queries import PgReadStore
from zapflow.ingest.cursors import BadCursor
from zapflow.ingest.ports import MediaStore

logger = logging.getLogger(__name__)

Answer = Callable[[Any], Awaitable[q.Reply]]


class QueryHandlers:
    """One coroutine per query: request contract in, reply contract out."""

    def __init__(self, store: PgReadStore, media: MediaStore) -> None:
        self._store = store
        self._media = media

    def routes(self) -> dict[str, tuple[type[BaseModel], Answer]]:
        return {
            q.LIST_CONVERSATIONS: (q.ListConversationsRequest, self.list_conversations),
            q.GET_CONVERSATION: (q.GetConversationRequest, self.get_conversation),
            q.LIST_MESSAGES: (q.ListMessagesRequest, self.list_messages),
            q.SEARCH_MESSAGES: (q.SearchMessagesRequest, self.search_messages),
            q.GET_CONTACT: (q.GetContactRequest, self.get_contact),
            q.GET_MEDIA: (q.GetMediaRequest, self.get_media),
        }

    async def list_conversations(self, req: q.ListConversationsRequest) -> q.ConversationsPage:
        return await self._store.list_conversations(req)

    async def get_conversation(self, req: q.GetConversationRequest) -> q.ConversationReply:
        found = await self._store.get_conversation(req.tenant_id, req.conversation_id)
        return q.ConversationReply(conversation=found)

    async def list_messages(self, req: q.ListMessagesRequest) -> q.MessagesPage:
        return await self._store.list_messages(req)

    async def search_messages(self, req: q.SearchMessagesRequest) -> q.MessagesPage:
        return await self._store.search_messages(req)

    async def get_contact(self, req: q.GetContactRequest) -> q.ContactReply:
        return q.ContactReply(contact=await self._store.get_contact(req))

    async def get_media(self, req: q.GetMediaRequest) -> q.MediaChunk:
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


class Responders:
    """Subscribes every route in queue group ``ingest`` and answers with bounded concurrency."""

    def __init__(self, nc: NATS, handlers: QueryHandlers, *, concurrency: int) -> None:
        self._nc = nc
        self._routes = handlers.routes()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, resources: AsyncExitStack) -> None:
        for subject, (model, answer) in self._routes.items():
            sub = await self._nc.subscribe(
                subject, queue=q.QUEUE_GROUP, cb=self._dispatcher(model, answer)
            )
            resources.push_async_callback(sub.unsubscribe)
        resources.push_async_callback(self._drain)

    def _dispatcher(
        self, model: type[BaseModel], answer: Answer
    ) -> Callable[[Msg], Awaitable[None]]:
        async def dispatch(msg: Msg) -> None:
            task = asyncio.create_task(self._answer(msg, model, answer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return dispatch

    async def _answer(self, msg: Msg, model: type[BaseModel], answer: Answer) -> None:
        async with self._slots:
            reply = await _reply(msg, model, answer)
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=_DRAIN_S)


_DRAIN_S: Final = 5.0


async def _reply(msg: Msg, model: type[BaseModel], answer: Answer) -> q.Reply:
    try:
        request = model.model_validate_json(msg.data)
    except ValidationError as exc:
        return q.Reply(error=q.QueryError(code="bad_request", message=_first_error(exc)))
    try:
        return await answer(request)
    except BadCursor:
        return q.Reply(error=q.QueryError(code="bad_request", message="invalid cursor"))
    except Exception:
        logger.exception("query failed", extra={"subject": msg.subject})
        return q.Reply(error=q.QueryError(code="internal", message="query failed"))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "request"
    return f"{where}: {err['msg']}"[:300]
