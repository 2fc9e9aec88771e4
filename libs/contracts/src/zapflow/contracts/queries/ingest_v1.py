"""Queries ingest answers: conversations, timelines, contacts, message search and media bytes.

Core NATS request-reply; ingest replicas answer in queue group :data:`QUEUE_GROUP`. Every request
carries ``tenant_id`` and nothing of another tenant is ever returned: a conversation, contact or
message of another tenant is simply not found. Lists are keyset-paginated, newest first; a page's
``next_cursor`` (opaque) is passed back as ``cursor`` for the next page and is None on the last.

Subjects live under ``zf.query.ingest.`` rather than ``zf.ingest.``: the ``ZF_INGEST`` work-queue
stream captures ``zf.ingest.>``, so a request there would be stored as a command and answered
with a JetStream ack instead of the reply.

Failures use the common reply envelope of ``zapflow.contracts.queries``. Not found is not an
error: the object field is None. Only the gateway asks (for the caller it authenticated).
"""

from __future__ import annotations

from typing import Final, Literal, Self, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, Field, model_validator

from zapflow.contracts.common import Actor, SendOrigin
from zapflow.contracts.content import OutboundContent
from zapflow.contracts.conversations.v1 import ConversationStatus
from zapflow.contracts.envelope import Contract
from zapflow.contracts.model import (
    DeliveryStatus,
    Direction,
    InteractiveReply,
    Location,
    Media,
    MessageKind,
    Reaction,
    SharedContact,
)
from zapflow.contracts.queries import QuerySpec
from zapflow.contracts.types import ChannelId, PhoneE164, TenantId, UserId

DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 200
MEDIA_CHUNK_BYTES: Final = 512 * 1024
"""Largest media chunk per reply: 512 KiB (about 700 KB base64), under NATS's 1 MB payload."""

Cursor = str


# -- views ------------------------------------------------------------------------------------
class ContactView(Contract):
    id: UUID
    kind: Literal["person", "group"] = "person"
    phone: PhoneE164 | None = None
    wa_id: str | None = None
    lid: str | None = None
    name: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    user_id: str | None = Field(
        default=None, description="Meta business-scoped user id (BSUID), when known."
    )


class ConversationView(Contract):
    id: UUID
    channel_id: ChannelId
    contact: ContactView
    group_id: str | None = Field(default=None, description="Provider group id, for groups.")
    status: ConversationStatus
    assignee: UserId | None = None
    unread_count: int = Field(ge=0)
    last_message_at: AwareDatetime
    last_inbound_at: AwareDatetime | None = None
    created_at: AwareDatetime


class MessageView(Contract):
    id: UUID
    conversation_id: UUID
    channel_id: ChannelId
    contact_id: UUID
    sender_contact_id: UUID | None = Field(default=None, description="Author, in groups.")
    provider_message_id: str | None = None
    direction: Direction
    kind: MessageKind
    from_me: bool = False
    text: str | None = None
    media: Media | None = None
    media_stored: bool = Field(default=False, description="Bytes are in Zapflow's media store.")
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    reaction: Reaction | None = None
    interactive: InteractiveReply | None = None
    reply_to: str | None = Field(default=None, description="Provider id of the quoted message.")
    forwarded: bool = False
    status: DeliveryStatus | None = Field(default=None, description="Outbound messages only.")
    status_at: AwareDatetime | None = None
    error_code: str | None = None
    error_text: str | None = None
    edited: bool = False
    edited_at: AwareDatetime | None = None
    revoked: bool = False
    revoked_at: AwareDatetime | None = None
    raw_type: str | None = None
    sent_at: AwareDatetime
    stored_at: AwareDatetime
    status_reason: str | None = Field(
        default=None,
        description="Why an outbound message was vetoed or failed: the veto or failure reason "
        "code (`opted_out`, `invalid_recipient`, …); `error_code`/`error_text` hold the "
        "provider's code and text when it gave them.",
    )
    origin: SendOrigin | None = Field(
        default=None, description="Messages sent through Zapflow: who asked for the send."
    )
    campaign_id: UUID | None = None
    recipient_id: UUID | None = None
    requested_by: Actor | None = None
    outbound_content: OutboundContent | None = Field(
        default=None,
        description="Messages sent through Zapflow: the content as requested (template "
        "parameters, buttons, list sections); `kind`, `text` and `media` show it too.",
    )


class MediaInfo(Contract):
    message_id: UUID
    mime_type: str | None = None
    size_bytes: int = Field(ge=0)
    sha256: str = Field(description="Hex SHA-256 of the stored bytes.")
    filename: str | None = None
    stored_at: AwareDatetime


class Reply(Contract):
    """Base of ingest's replies (failures travel in the common envelope, see ``queries``)."""


class _Paged(Contract):
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: Cursor | None = Field(default=None, max_length=512)


# -- requests and replies ---------------------------------------------------------------------
class ListConversationsRequest(_Paged):
    """Conversations by last activity, newest first; every filter given must hold."""

    tenant_id: TenantId
    status: ConversationStatus | None = None
    assignee: UserId | None = None
    unassigned: bool = Field(default=False, description="Only conversations without assignee.")
    unread: bool | None = Field(default=None, description="True: unread > 0; False: none.")
    channel_id: ChannelId | None = None


class ConversationsPage(Reply):
    items: tuple[ConversationView, ...] = ()
    next_cursor: Cursor | None = None


class GetConversationRequest(Contract):
    tenant_id: TenantId
    conversation_id: UUID


class ConversationReply(Reply):
    conversation: ConversationView | None = None


class ListMessagesRequest(_Paged):
    """A conversation's timeline, newest first."""

    tenant_id: TenantId
    conversation_id: UUID


class SearchMessagesRequest(_Paged):
    """Full-text search over text, captions and file names (web-search syntax: words, "quoted
    phrases", -exclusions, OR), newest first; revoked messages are left out."""

    tenant_id: TenantId
    query: str = Field(min_length=1, max_length=256)
    channel_id: ChannelId | None = None
    conversation_id: UUID | None = None


class MessagesPage(Reply):
    found: bool = Field(default=True, description="False when the conversation does not exist.")
    items: tuple[MessageView, ...] = ()
    next_cursor: Cursor | None = None


class GetContactRequest(Contract):
    """Exactly one of ``contact_id`` and ``phone``."""

    tenant_id: TenantId
    contact_id: UUID | None = None
    phone: PhoneE164 | None = None

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        if (self.contact_id is None) == (self.phone is None):
            raise ValueError("give exactly one of contact_id and phone")
        return self


class ContactReply(Reply):
    contact: ContactView | None = None


class GetMediaRequest(Contract):
    """Stored bytes of a message's media, ``length`` bytes from ``offset``."""

    tenant_id: TenantId
    message_id: UUID
    offset: int = Field(default=0, ge=0)
    length: int = Field(default=MEDIA_CHUNK_BYTES, ge=1, le=MEDIA_CHUNK_BYTES)


class MediaChunk(Reply):
    state: Literal["stored", "pending", "failed", "none"] = Field(
        default="none",
        description="stored: bytes follow; pending/failed: download not done or given up; "
        "none: no such message with media for this tenant.",
    )
    media: MediaInfo | None = None
    offset: int = 0
    data_b64: str = ""
    eof: bool = True


_Req = TypeVar("_Req", bound=Contract)
_Rep = TypeVar("_Rep", bound=Reply)


def _query(
    name: str, request: type[_Req], reply: type[_Rep], description: str
) -> QuerySpec[_Req, _Rep]:
    return QuerySpec(
        subject=f"zf.query.ingest.{name}.v1",
        request=request,
        reply=reply,
        server="ingest",
        callers=frozenset({"gateway"}),
        description=description,
    )


LIST_CONVERSATIONS: Final = _query(
    "list_conversations",
    ListConversationsRequest,
    ConversationsPage,
    "Conversations by last activity.",
)
GET_CONVERSATION: Final = _query(
    "get_conversation", GetConversationRequest, ConversationReply, "One conversation."
)
LIST_MESSAGES: Final = _query(
    "list_messages", ListMessagesRequest, MessagesPage, "A conversation's timeline."
)
GET_CONTACT: Final = _query("get_contact", GetContactRequest, ContactReply, "One contact.")
SEARCH_MESSAGES: Final = _query(
    "search_messages", SearchMessagesRequest, MessagesPage, "Full-text message search."
)
GET_MEDIA: Final = _query("get_media", GetMediaRequest, MediaChunk, "A chunk of stored media.")

QUERIES: Final = (
    LIST_CONVERSATIONS,
    GET_CONVERSATION,
    LIST_MESSAGES,
    GET_CONTACT,
    SEARCH_MESSAGES,
    GET_MEDIA,
)
"""Every query ingest answers."""
