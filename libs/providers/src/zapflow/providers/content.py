"""What we ask a provider to send: :class:`OutboundContent` and its parts.

Exactly one of ``text``, ``media``, ``template`` or ``interactive`` is set. Every adapter builds the
request for what its provider supports and raises
:class:`~zapflow.providers.errors.UnsupportedContentError` for the rest (e.g. templates on Z-API).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from zapflow.contracts.model import MessageKind

MEDIA_KINDS = frozenset(
    {
        MessageKind.IMAGE,
        MessageKind.AUDIO,
        MessageKind.VIDEO,
        MessageKind.DOCUMENT,
        MessageKind.STICKER,
    }
)


@dataclass(frozen=True)
class OutboundMedia:
    """Media by public ``link`` (every provider) or by provider ``media_id`` (Meta uploads)."""

    kind: MessageKind
    link: str | None = None
    media_id: str | None = None
    caption: str | None = None
    filename: str | None = None
    mime_type: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in MEDIA_KINDS:
            raise ValueError(f"{self.kind} is not a media kind")
        if (self.link is None) == (self.media_id is None):
            raise ValueError("give exactly one of link or media_id")


@dataclass(frozen=True)
class TemplateContent:
    """An approved template. ``components`` use Meta's wire shape verbatim (header/body/button
    parameter lists), since templates only exist on the Cloud API."""

    name: str
    language: str
    components: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ReplyButton:
    id: str
    title: str


@dataclass(frozen=True)
class ListRow:
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class ListSection:
    title: str
    rows: tuple[ListRow, ...]


@dataclass(frozen=True)
class InteractiveContent:
    """Reply buttons (``kind="button"``, up to 3) or a list (``kind="list"``; ``button`` opens
    it)."""

    kind: Literal["button", "list"]
    body: str
    buttons: tuple[ReplyButton, ...] = ()
    button: str | None = None
    sections: tuple[ListSection, ...] = ()
    header: str | None = None
    footer: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "button" and not self.buttons:
            raise ValueError("button messages need buttons")
        if self.kind == "list" and not (self.sections and self.button):
            raise ValueError("list messages need a button label and sections")


@dataclass(frozen=True)
class ReplyTo:
    """The quoted message. ``text`` lets Evolution render the quote; ``sender`` (phone or JID of the
    quoted message's author) is what WuzAPI puts in ``ContextInfo.Participant`` and defaults to the
    recipient."""

    message_id: str
    text: str | None = None
    sender: str | None = None


@dataclass(frozen=True)
class OutboundContent:
    """One message to one recipient.

    ``to`` is a phone in any form (normalized to E.164 digits) or, for the unofficial providers, a
    group JID. ``preview_url`` is sent only when not None (Meta ``text.preview_url``, Evolution
    ``linkPreview``). ``delay_ms`` is the typing delay of Evolution (``delay``, ms) and Z-API
    (``delayMessage``, whole seconds 1-15). ``client_message_id`` becomes WuzAPI's ``Id``, which
    makes a retried send idempotent there.
    """

    to: str
    text: str | None = None
    media: OutboundMedia | None = None
    template: TemplateContent | None = None
    interactive: InteractiveContent | None = None
    reply_to: ReplyTo | None = None
    preview_url: bool | None = None
    delay_ms: int | None = None
    client_message_id: str | None = None

    def __post_init__(self) -> None:
        parts = (self.text, self.media, self.template, self.interactive)
        if sum(part is not None for part in parts) != 1:
            raise ValueError("set exactly one of text, media, template or interactive")
