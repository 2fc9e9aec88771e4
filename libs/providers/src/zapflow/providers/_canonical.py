"""Building canonical messages from the two halves every vendor parser extracts.

A vendor parser reads *who/when* (:class:`Envelope`) and *what* (:class:`Content`) separately and
:func:`build_message` joins them, so the rules (direction from ``from_me``, raw kept only for
unsupported/system/flagged items) live in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from zapflow.contracts.model import (
    Direction,
    Group,
    InteractiveReply,
    Location,
    Media,
    Message,
    MessageKind,
    Party,
    Reaction,
    SharedContact,
)
from zapflow.providers._wire import JsonDict
from zapflow.providers.phones import normalize_phone

_WAID: Final = re.compile(r"waid=(\d{6,20})", re.IGNORECASE)


@dataclass(frozen=True)
class Content:
    kind: MessageKind
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    reaction: Reaction | None = None
    interactive: InteractiveReply | None = None
    raw_type: str | None = None
    keep_raw: bool = False


def unsupported(raw_type: str | None) -> Content:
    return Content(MessageKind.UNSUPPORTED, raw_type=raw_type, keep_raw=True)


@dataclass(frozen=True)
class Envelope:
    provider_message_id: str
    sent_at: datetime
    contact: Party
    from_me: bool = False
    sender: Party | None = None
    group: Group | None = None
    reply_to: str | None = None
    forwarded: bool = False


def build_message(envelope: Envelope, content: Content, raw: JsonDict) -> Message:
    keep = content.keep_raw or content.kind in (MessageKind.UNSUPPORTED, MessageKind.SYSTEM)
    return Message(
        provider_message_id=envelope.provider_message_id,
        direction=Direction.OUTBOUND if envelope.from_me else Direction.INBOUND,
        kind=content.kind,
        sent_at=envelope.sent_at,
        contact=envelope.contact,
        sender=envelope.sender,
        group=envelope.group,
        from_me=envelope.from_me,
        text=content.text,
        media=content.media,
        location=content.location,
        contacts=content.contacts,
        reaction=content.reaction,
        interactive=content.interactive,
        reply_to=envelope.reply_to,
        forwarded=envelope.forwarded,
        raw_type=content.raw_type,
        raw=raw if keep else None,
    )


def display_phone(raw: str) -> str:
    """E.164 when ``raw`` is a phone, else the stripped raw text (for shared-contact lists)."""
    return normalize_phone(raw) or raw.strip()


def vcard_phones(vcard: str | None) -> tuple[str, ...]:
    """Phones of a vCard: the ``waid=`` parameter when present, else the ``TEL`` value."""
    if not vcard:
        return ()
    phones: list[str] = []
    for line in vcard.splitlines()[:200]:
        name, colon, value = line.partition(":")
        if not colon or name.split(";")[0].split(".")[-1].upper() != "TEL":
            continue
        waid = _WAID.search(name)
        phone = display_phone(waid.group(1) if waid else value)
        if phone:
            phones.append(phone)
    return tuple(phones)
