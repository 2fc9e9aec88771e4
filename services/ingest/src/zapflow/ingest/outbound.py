"""Pure decisions of the outbound path: no I/O, no framework, plain values in and out.

* :data:`SendEvent` — the four ``zapflow.contracts.sending.v1`` events ingest-outbound reads;
* :func:`timeline_content` — what the timeline shows for an ``OutboundContent``;
* :func:`recipient_party` — the contact identity a ``Recipient`` names;
* :func:`outcome_of` — the status a veto or a send outcome sets (applied when
  ``zapflow.contracts.model.status_advances`` says it moves the message forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Final
from uuid import UUID

from pydantic import Field, TypeAdapter

from zapflow.contracts.content import (
    InteractiveContent,
    MediaContent,
    OutboundContent,
    TemplateContent,
    TextContent,
)
from zapflow.contracts.model import DeliveryStatus, Media, MessageKind, Party
from zapflow.contracts.sending.v1 import (
    Recipient,
    SendFailed,
    SendRequested,
    SendSucceeded,
    SendVetoed,
)
from zapflow.ingest.domain import ContactKind

SendEvent = Annotated[
    SendRequested | SendVetoed | SendSucceeded | SendFailed, Field(discriminator="type")
]
"""What the ingest-outbound consumer reads, told apart by ``type``."""

SEND_EVENTS: Final[TypeAdapter[SendEvent]] = TypeAdapter(SendEvent)
OutcomeEvent = SendVetoed | SendSucceeded | SendFailed
"""The send events that end a message's queued state."""

GROUP_SUFFIXES: Final = ("@g.us", "-group")
LID_SUFFIX: Final = "@lid"


def message_id_of(evt: SendEvent) -> UUID:
    if isinstance(evt, SendRequested | SendVetoed):
        return evt.request.message_id
    return evt.message_id


def channel_of(evt: SendEvent) -> str:
    if isinstance(evt, SendRequested | SendVetoed):
        return evt.request.channel_id
    return evt.channel_id


@dataclass(frozen=True)
class TimelineContent:
    """The timeline columns of an outbound message."""

    kind: MessageKind
    text: str | None
    media: Media | None


def timeline_content(content: OutboundContent) -> TimelineContent:
    """Text body, media (caption inside, as for inbound), a template's rendered text (and header
    media), or an interactive message's body."""
    if isinstance(content, TextContent):
        return TimelineContent(MessageKind.TEXT, content.body, None)
    if isinstance(content, MediaContent):
        return TimelineContent(MessageKind(content.media_type.value), None, _media(content))
    if isinstance(content, TemplateContent):
        header = _media(content.header_media) if content.header_media else None
        return TimelineContent(MessageKind.TEMPLATE, content.rendered_text, header)
    assert isinstance(content, InteractiveContent)
    return TimelineContent(MessageKind.INTERACTIVE, content.body, None)


def _media(content: MediaContent) -> Media:
    return Media(
        provider_media_id=content.provider_media_id,
        url=content.url,
        mime_type=content.mime_type,
        filename=content.filename,
        caption=content.caption,
        voice=content.voice,
        stored_key=content.stored_key,
    )


def recipient_party(to: Recipient) -> tuple[Party, ContactKind]:
    """The identity to look the recipient's contact up by: phone and/or provider address, where
    an address ending in ``@lid`` is a LID and a group address names a group contact."""
    address = to.wa_id
    if address is not None and address.endswith(GROUP_SUFFIXES):
        return Party(wa_id=address), "group"
    if address is not None and address.endswith(LID_SUFFIX):
        return Party(phone=to.phone, lid=address), "person"
    return Party(phone=to.phone, wa_id=address), "person"


@dataclass(frozen=True)
class Outcome:
    """The status a veto or a send outcome sets, with its reason and the provider's details."""

    status: DeliveryStatus
    at: datetime
    reason: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    provider_message_id: str | None = None


def outcome_of(evt: OutcomeEvent) -> Outcome:
    """Vetoed: the veto reason is the code; failed: the provider's code, else the reason; sent:
    the provider's message id (an empty one is no id)."""
    if isinstance(evt, SendVetoed):
        reason = evt.reason.value
        return Outcome(DeliveryStatus.VETOED, evt.occurred_at, reason, reason, evt.text)
    if isinstance(evt, SendFailed):
        reason = evt.reason.value
        code = evt.error_code or reason
        return Outcome(DeliveryStatus.FAILED, evt.failed_at, reason, code, evt.error_text)
    return Outcome(
        DeliveryStatus.SENT, evt.sent_at, provider_message_id=evt.provider_message_id or None
    )
