"""Request and response bodies of the send API (``send_api``).

The content models are the contract's (``zapflow.contracts.content``) made strict: an unknown
field is an error here, as everywhere in the REST API, while the contracts themselves stay
tolerant readers. :func:`to_contract` turns accepted content into the contract value carried by
``SendRequest``.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from zapflow.contracts.common import SendPriority
from zapflow.contracts.content import (
    InteractiveContent,
    ListRow,
    ListSection,
    MediaContent,
    OutboundContent,
    ReplyButton,
    TemplateButtonParameter,
    TemplateContent,
    TextContent,
)
from zapflow.contracts.types import ChannelId, PhoneE164

_STRICT = ConfigDict(extra="forbid", frozen=True)

HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]


class TextIn(TextContent):
    """`{"kind": "text", "body": "..."}`; `preview_url` renders a link preview."""

    model_config = _STRICT


class MediaIn(MediaContent):
    """An image, audio, video, document or sticker: from Zapflow's media store (`stored_key`,
    e.g. a received file), a public `url`, or a media id already uploaded to the provider."""

    model_config = _STRICT

    url: HttpUrl | None = Field(default=None, description="http(s) URL the provider can fetch.")
    stored_key: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None, description="Key in Zapflow's media store."
    )


class TemplateButtonIn(TemplateButtonParameter):
    model_config = _STRICT


class TemplateIn(TemplateContent):
    """An approved template by name and language, with its positional or named parameters."""

    model_config = _STRICT

    header_media: MediaIn | None = None
    buttons: tuple[TemplateButtonIn, ...] = ()


class ReplyButtonIn(ReplyButton):
    model_config = _STRICT


class ListRowIn(ListRow):
    model_config = _STRICT


class ListSectionIn(ListSection):
    model_config = _STRICT

    rows: tuple[ListRowIn, ...] = Field(min_length=1)


class InteractiveIn(InteractiveContent):
    """Up to 3 reply buttons, or a list of sections opened by `list_button`."""

    model_config = _STRICT

    buttons: tuple[ReplyButtonIn, ...] = Field(default=(), max_length=3)
    sections: tuple[ListSectionIn, ...] = Field(default=(), max_length=10)


ContentIn = Annotated[TextIn | MediaIn | TemplateIn | InteractiveIn, Field(discriminator="kind")]

_CONTENT: TypeAdapter[OutboundContent] = TypeAdapter(OutboundContent)


def to_contract(content: TextIn | MediaIn | TemplateIn | InteractiveIn) -> OutboundContent:
    """The contract value of accepted content (plain contract classes, not the strict ones)."""
    return _CONTENT.validate_python(content.model_dump())


class _SendIn(BaseModel):
    model_config = _STRICT

    content: ContentIn
    reply_to: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        default=None, description="Provider message id of the message to quote."
    )
    priority: SendPriority = Field(
        default=SendPriority.NORMAL, description="Order among this channel's pending sends."
    )
    not_after: AwareDatetime | None = Field(
        default=None, description="Give up (vetoed `expired`) if not sent by then."
    )


class ConversationMessageIn(_SendIn):
    """A message to the contact of a conversation, on the conversation's channel."""


class MessageIn(_SendIn):
    """A message to a phone number on one of the tenant's channels."""

    channel_id: ChannelId
    to: PhoneE164 = Field(description="E.164, e.g. `+5511999990001`.")


class SendAccepted(BaseModel):
    """The send was stored and will be published: compliance decides next, then the sender."""

    message_id: UUID = Field(description="Zapflow's id of the message; follow it with this id.")
    status: Literal["queued"] = "queued"
    channel_id: str
    conversation_id: UUID | None = None
    idempotency_key: str = Field(
        description="The `Idempotency-Key` given, or one derived from the message id."
    )
