"""Read API: conversations, timelines, contacts, message search and media, answered by ingest.

The gateway holds no conversation data. Each route asks ingest over NATS request-reply
(``zapflow.contracts.queries.ingest_v1``, answered by ingest's queue group) for the caller's
tenant only, so another tenant's ids are simply not found. Outcomes:

* 200 with the typed page or object; lists are newest first, pass ``next_cursor`` back as
  ``cursor`` for the next page;
* 404 when the object does not exist for this tenant;
* 400 when the request is invalid (a bad cursor, an impossible filter);
* 503 (``Retry-After: 1``) when ingest does not answer in time or cannot answer.

Media bytes are streamed to the client chunk by chunk (512 KiB per NATS reply). A media file
comes from a customer or a provider, so it is served so that it can never run in the gateway's
origin: always ``Content-Disposition: attachment`` (a sanitized ASCII ``filename`` plus the
UTF-8 ``filename*``), ``X-Content-Type-Options: nosniff``, a ``Content-Security-Policy`` that
sandboxes it, and the stored media type only when it is passive (images other than SVG, audio,
video, PDF, plain text); anything else is ``application/octet-stream``.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError

from zapflow.contracts.conversations.v1 import ConversationStatus
from zapflow.contracts.envelope import Contract
from zapflow.contracts.queries import QuerySpec
from zapflow.contracts.queries import ingest_v1 as q
from zapflow.gateway import scopes
from zapflow.gateway.auth import Principal, requires
from zapflow.gateway.schemas import ErrorOut
from zapflow.providers.phones import normalize_phone
from zapflow.runtime import rpc
from zapflow.runtime.rpc import QueryFailed, QueryUnavailable

CALLER: Final = "gateway"
"""The gateway asks its queries under its own name (its NATS identity allows no other)."""
QUERY_TIMEOUT_S: Final = 5.0
"""How long a route waits for ingest's answer before answering 503."""
OCTET_STREAM: Final = "application/octet-stream"
PASSIVE_TYPES: Final = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/heic",
        "image/heif",
        "image/avif",
        "application/pdf",
        "text/plain",
    }
)
"""Media types served as stored (besides ``audio/*`` and ``video/*``): none can run script."""
PASSIVE_FAMILIES: Final = ("audio/", "video/")
MEDIA_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\/;:*?<>|%]')

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid request"},
    401: {"model": ErrorOut, "description": "Missing, invalid or revoked API key"},
    403: {"model": ErrorOut, "description": "The API key lacks the route's scope"},
    404: {"model": ErrorOut, "description": "Not found for this tenant"},
    503: {"model": ErrorOut, "description": "The conversation store did not answer; retry"},
}

router = APIRouter(tags=["conversations"], responses=_ERRORS)

READ = requires(scopes.MESSAGES_READ)
Tenant = Annotated[Principal, Depends(READ)]
Limit = Annotated[int, Query(ge=1, le=q.MAX_PAGE, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of a page.")]

R = TypeVar("R", bound=q.Reply)
C = TypeVar("C", bound=Contract)


class ConversationPage(BaseModel):
    items: list[q.ConversationView]
    next_cursor: str | None = None


class MessagePage(BaseModel):
    items: list[q.MessageView]
    next_cursor: str | None = None


def _unavailable() -> HTTPException:
    return HTTPException(503, "conversation store unavailable", headers={"Retry-After": "1"})


def _query(model: type[C], **fields: Any) -> C:
    """Build a query contract; a value it refuses is the client's error (400)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "request"
        raise HTTPException(400, f"{where}: {err['msg']}") from None


async def ask_ingest(
    request: Request, spec: QuerySpec[Any, Any], query: Contract, reply_model: type[R]
) -> R:
    """Ingest's reply to ``query``; 400 if ingest calls it a bad request, 503 if it cannot
    answer in time (also used by the send API to look conversations up)."""
    assert spec.reply is reply_model, f"{spec.subject} answers {spec.reply.__name__}"
    nc = request.app.state.service.nc
    try:
        reply = await rpc.ask(nc, spec, query, caller=CALLER, timeout_s=QUERY_TIMEOUT_S)
    except QueryUnavailable:
        raise _unavailable() from None
    except QueryFailed as exc:
        if exc.code == "bad_request":
            raise HTTPException(400, exc.message) from None
        raise _unavailable() from None
    assert isinstance(reply, reply_model)
    return reply


@router.get("/v1/conversations", summary="List conversations, most recent activity first")
async def list_conversations(
    request: Request,
    who: Tenant,
    status: ConversationStatus | None = None,
    assignee: Annotated[str | None, Query(max_length=128)] = None,
    unassigned: bool = False,
    unread: Annotated[bool | None, Query(description="true: unread only; false: read")] = None,
    channel_id: str | None = None,
    limit: Limit = q.DEFAULT_PAGE,
    cursor: Cursor = None,
) -> ConversationPage:
    query = _query(
        q.ListConversationsRequest,
        tenant_id=who.tenant_id,
        status=status,
        assignee=assignee,
        unassigned=unassigned,
        unread=unread,
        channel_id=channel_id,
        limit=limit,
        cursor=cursor,
    )
    page = await ask_ingest(request, q.LIST_CONVERSATIONS, query, q.ConversationsPage)
    return ConversationPage(items=list(page.items), next_cursor=page.next_cursor)


@router.get("/v1/conversations/{conversation_id}", summary="One conversation")
async def get_conversation(
    request: Request, conversation_id: UUID, who: Tenant
) -> q.ConversationView:
    query = q.GetConversationRequest(tenant_id=who.tenant_id, conversation_id=conversation_id)
    reply = await ask_ingest(request, q.GET_CONVERSATION, query, q.ConversationReply)
    if reply.conversation is None:
        raise HTTPException(404, "conversation not found")
    return reply.conversation


@router.get(
    "/v1/conversations/{conversation_id}/messages",
    summary="A conversation's timeline, newest first",
)
async def list_messages(
    request: Request,
    conversation_id: UUID,
    who: Tenant,
    limit: Limit = q.DEFAULT_PAGE,
    cursor: Cursor = None,
) -> MessagePage:
    query = _query(
        q.ListMessagesRequest,
        tenant_id=who.tenant_id,
        conversation_id=conversation_id,
        limit=limit,
        cursor=cursor,
    )
    page = await ask_ingest(request, q.LIST_MESSAGES, query, q.MessagesPage)
    if not page.found:
        raise HTTPException(404, "conversation not found")
    return MessagePage(items=list(page.items), next_cursor=page.next_cursor)


@router.get("/v1/contacts/{contact_id}", summary="One contact")
async def get_contact(request: Request, contact_id: UUID, who: Tenant) -> q.ContactView:
    query = q.GetContactRequest(tenant_id=who.tenant_id, contact_id=contact_id)
    return await _contact(request, query)


@router.get("/v1/contacts", summary="Find a contact by phone number")
async def find_contact(
    request: Request,
    who: Tenant,
    phone: Annotated[str, Query(max_length=32, description="Any phone form; E.164 preferred.")],
) -> q.ContactView:
    e164 = normalize_phone(phone)
    if e164 is None:
        raise HTTPException(400, "phone: not a phone number")
    return await _contact(request, q.GetContactRequest(tenant_id=who.tenant_id, phone=e164))


async def _contact(request: Request, query: q.GetContactRequest) -> q.ContactView:
    reply = await ask_ingest(request, q.GET_CONTACT, query, q.ContactReply)
    if reply.contact is None:
        raise HTTPException(404, "contact not found")
    return reply.contact


@router.get("/v1/messages/search", summary="Full-text search over messages, newest first")
async def search_messages(
    request: Request,
    who: Tenant,
    q_: Annotated[
        str,
        Query(
            alias="q",
            min_length=1,
            max_length=256,
            description='Words, "quoted phrases", -excluded words, OR.',
        ),
    ],
    channel_id: str | None = None,
    conversation_id: UUID | None = None,
    limit: Limit = q.DEFAULT_PAGE,
    cursor: Cursor = None,
) -> MessagePage:
    query = _query(
        q.SearchMessagesRequest,
        tenant_id=who.tenant_id,
        query=q_,
        channel_id=channel_id,
        conversation_id=conversation_id,
        limit=limit,
        cursor=cursor,
    )
    page = await ask_ingest(request, q.SEARCH_MESSAGES, query, q.MessagesPage)
    return MessagePage(items=list(page.items), next_cursor=page.next_cursor)


@router.get(
    "/v1/media/{message_id}",
    summary="The stored media file of a message",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "The file, with its media type, size and SHA-256 (ETag).",
        },
        404: {"model": ErrorOut, "description": "No stored media for this message"},
    },
)
async def get_media(request: Request, message_id: UUID, who: Tenant) -> StreamingResponse:
    query = q.GetMediaRequest(tenant_id=who.tenant_id, message_id=message_id)
    first = await ask_ingest(request, q.GET_MEDIA, query, q.MediaChunk)
    if first.state != "stored" or first.media is None:
        detail = "media not stored yet" if first.state == "pending" else "media not found"
        raise HTTPException(404, detail)
    info = first.media
    headers = {
        "Content-Length": str(info.size_bytes),
        "ETag": f'"{info.sha256}"',
        "Content-Disposition": attachment(info.filename, f"media-{message_id}"),
        **MEDIA_HEADERS,
    }
    return StreamingResponse(
        _chunks(request, query, first), media_type=served_type(info.mime_type), headers=headers
    )


def served_type(mime_type: str | None) -> str:
    """The stored media type when it is passive and well-formed, else octet-stream; never
    with parameters (a charset on text/plain is not needed for a download)."""
    if not mime_type:
        return OCTET_STREAM
    base = mime_type.split(";", 1)[0].strip().lower()
    if not _TOKEN.fullmatch(base):
        return OCTET_STREAM
    if base in PASSIVE_TYPES or base.startswith(PASSIVE_FAMILIES):
        return base
    return OCTET_STREAM


def attachment(filename: str | None, fallback: str) -> str:
    """``attachment`` with a safe ASCII ``filename`` and, for the original name, ``filename*``.

    The name comes from a payload: path separators, quotes, control characters and the like
    become ``_``, dots at the start are dropped, at most 150 characters are kept."""
    name = _UNSAFE_FILENAME.sub("_", unicodedata.normalize("NFC", filename or "")).strip()
    name = name.lstrip(".").strip()[:150] or fallback
    ascii_name = name.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


async def _chunks(
    request: Request, query: q.GetMediaRequest, chunk: q.MediaChunk
) -> AsyncIterator[bytes]:
    offset = 0
    while True:
        data = base64.b64decode(chunk.data_b64)
        yield data
        offset += len(data)
        if chunk.eof or not data:
            return
        next_query = query.model_copy(update={"offset": offset})
        chunk = await ask_ingest(request, q.GET_MEDIA, next_query, q.MediaChunk)
