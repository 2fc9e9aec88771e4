"""The canonical WhatsApp model: what every provider's payload is normalized into.

Provider adapters (``zapflow.providers``) produce these types; ingest stores them; events carry
them. Anything a provider sends that does not map to a known kind becomes
``MessageKind.UNSUPPORTED`` with the provider's raw item kept in ``raw`` — never dropped.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, Field

from zapflow.contracts.envelope import Contract
from zapflow.contracts.types import PhoneE164


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    INTERACTIVE = "interactive"
    TEMPLATE = "template"
    SYSTEM = "system"
    UNSUPPORTED = "unsupported"


class DeliveryStatus(StrEnum):
    """Lifecycle of a message. ``failed`` and ``vetoed`` are terminal; the rest move forward.

    ``played``: the recipient played a voice message (Meta ``played``, Evolution/Z-API
    ``PLAYED``, WuzAPI ``played`` receipts). Playing implies reading, so it ranks after ``read``:
    ``read`` then ``played`` advances, ``played`` then ``read`` does not.
    """

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    VETOED = "vetoed"


_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
    DeliveryStatus.PLAYED: 4,
    DeliveryStatus.FAILED: 5,
    DeliveryStatus.VETOED: 5,
}


def status_advances(current: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """True when moving from ``current`` to ``new`` is progress; a status never regresses.

    ``failed``/``vetoed`` end the lifecycle and are never replaced. ``failed`` only follows
    ``queued`` or ``sent`` (a delivered message did not fail), and ``vetoed`` only ``queued``
    (a message the provider took was not vetoed).
    """
    if current is None:
        return True
    if current in (DeliveryStatus.FAILED, DeliveryStatus.VETOED):
        return False
    if new is DeliveryStatus.VETOED:
        return current is DeliveryStatus.QUEUED
    if new is DeliveryStatus.FAILED:
        return current in (DeliveryStatus.QUEUED, DeliveryStatus.SENT)
    return _RANK[new] > _RANK[current]


class Party(Contract):
    """A WhatsApp identity as far as the provider revealed it."""

    phone: PhoneE164 | None = Field(default=None, description="E.164 phone, when known.")
    wa_id: str | None = Field(default=None, description="Provider's raw id (wa_id, JID) as sent.")
    lid: str | None = Field(
        default=None, description="WhatsApp LID identity, when addressed by LID."
    )
    name: str | None = Field(default=None, description="Profile (push) name.")
    user_id: str | None = Field(
        default=None,
        description="Meta business-scoped user id (BSUID, e.g. `BR.1502576394655843`): beside "
        "`wa_id`, or instead of it for users who adopted a username and hide their number.",
    )


class Group(Contract):
    id: str = Field(description="Provider's group id (JID or `<id>-group`).")
    name: str | None = None


class Media(Contract):
    provider_media_id: str | None = None
    url: str | None = Field(default=None, description="Provider URL; may expire.")
    mime_type: str | None = None
    sha256: str | None = None
    filename: str | None = None
    caption: str | None = None
    size_bytes: int | None = None
    seconds: int | None = None
    voice: bool = Field(default=False, description="Audio recorded as a voice note (PTT).")
    animated: bool = False
    stored_key: str | None = Field(
        default=None, description="Key in Zapflow's media store once ingest persisted it."
    )


class Location(Contract):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None


class SharedContact(Contract):
    name: str | None = None
    phones: tuple[str, ...] = ()
    vcard: str | None = None


class Reaction(Contract):
    target_message_id: str = Field(description="Provider id of the message reacted to.")
    emoji: str | None = Field(default=None, description="None when the reaction was removed.")


class InteractiveReply(Contract):
    kind: Literal["button", "list", "template_button"]
    reply_id: str | None = None
    title: str | None = None
    description: str | None = None


class Message(Contract):
    """One WhatsApp message, inbound or an echo of one we (or the phone) sent."""

    provider_message_id: str
    direction: Direction
    kind: MessageKind
    sent_at: AwareDatetime
    contact: Party = Field(description="The customer on the other side of the conversation.")
    sender: Party | None = Field(default=None, description="Author in a group, when not contact.")
    group: Group | None = None
    from_me: bool = Field(default=False, description="Echo of a message sent by the business.")
    text: str | None = Field(default=None, description="Body, caption-free text, or system text.")
    media: Media | None = None
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    reaction: Reaction | None = None
    interactive: InteractiveReply | None = None
    reply_to: str | None = Field(default=None, description="Provider id of the quoted message.")
    forwarded: bool = False
    raw_type: str | None = Field(default=None, description="Provider's own type name.")
    raw: dict[str, Any] | None = Field(
        default=None, description="Provider's raw item, kept for unsupported kinds."
    )


class StatusUpdate(Contract):
    """A delivery receipt for a message the business sent."""

    provider_message_id: str
    status: DeliveryStatus
    at: AwareDatetime
    recipient: Party | None = None
    error_code: str | None = None
    error_text: str | None = None
    client_message_id: str | None = Field(
        default=None,
        description="The id the business gave the provider with the send, echoed in the "
        "receipt (Meta biz_opaque_callback_data); Zapflow sends its message id there.",
    )


class MessageEdit(Contract):
    provider_message_id: str = Field(description="Provider id of the edited message.")
    text: str | None
    at: AwareDatetime
    contact: Party
    from_me: bool = False
    change_message_id: str | None = Field(
        default=None,
        description="Provider id of the edit itself (its own message), when it has one apart "
        "from the edited message's.",
    )


class MessageRevoke(Contract):
    provider_message_id: str = Field(description="Provider id of the revoked (deleted) message.")
    at: AwareDatetime
    contact: Party
    from_me: bool = False
    change_message_id: str | None = Field(
        default=None,
        description="Provider id of the revoke itself (its own message), when it has one apart "
        "from the revoked message's.",
    )
