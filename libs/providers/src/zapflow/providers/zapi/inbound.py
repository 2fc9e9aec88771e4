"""Z-API callbacks -> canonical events.

Each POST is one flat callback named by ``type``: ``ReceivedCallback`` (a message, ours when
``fromMe``), ``MessageStatusCallback`` (``status`` for every id in ``ids``),
``DeliveryCallback`` (our send reached WhatsApp, or failed with ``error``/``errorCode``); others
(``DisconnectedCallback``, presence...) are ignored. Timestamps are ``momment`` (sic) in ms.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from pydantic import ValidationError

from zapflow.contracts.model import (
    DeliveryStatus,
    Group,
    InteractiveReply,
    Location,
    Media,
    MessageEdit,
    MessageKind,
    Reaction,
    SharedContact,
    StatusUpdate,
)
from zapflow.providers._canonical import (
    Content,
    Envelope,
    build_message,
    display_phone,
    unsupported,
)
from zapflow.providers._wire import (
    JsonDict,
    arr,
    decode_json,
    flag,
    ident,
    integer,
    nonempty,
    number,
    obj,
    string,
    unix_millis,
)
from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.identity import receiving_identities
from zapflow.providers.phones import is_group, normalize_phone, party, same_phone

PROVIDER: Final = "zapi"
STATUS_MAP: Final[dict[str, DeliveryStatus]] = {
    "PENDING": DeliveryStatus.QUEUED,
    "SENT": DeliveryStatus.SENT,
    "RECEIVED": DeliveryStatus.DELIVERED,
    "READ": DeliveryStatus.READ,
    "PLAYED": DeliveryStatus.PLAYED,
}
READ_SELF: Final = frozenset({"READ_BY_ME", "READ-SELF"})
"""We read the customer's message: not a delivery status."""

Clock = Callable[[], datetime]


def parse(body: bytes, *, channel_phone: str | None, clock: Clock) -> ParsedWebhook:
    data = decode_json(body, provider=PROVIDER)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise WebhookPayloadError("not a Z-API callback", provider=PROVIDER)
    out = ParsedWebhook(receiving=list(receiving_identities(PROVIDER, data)))
    connected = nonempty(data.get("connectedPhone"))
    if channel_phone and normalize_phone(connected) and not same_phone(connected, channel_phone):
        out.ignored.append("addressed to another channel number")
        return out
    kind = data["type"]
    handler = _HANDLERS.get(kind)
    if handler is None:
        out.ignored.append(kind if len(kind) <= 64 else "unknown callback")
        return out
    try:
        handler(data, out, clock)
    except ValidationError:
        out.ignored.append("invalid callback")
    return out


def _received(data: JsonDict, out: ParsedWebhook, clock: Clock) -> None:
    message_id = ident(data.get("messageId"))
    if message_id is None:
        out.ignored.append("message without id")
        return
    phone = nonempty(data.get("phone"))
    if flag(data.get("isNewsletter")) or flag(data.get("broadcast")):
        out.ignored.append("broadcast or newsletter")
        return
    from_me = flag(data.get("fromMe"))
    sent_at = unix_millis(data.get("momment")) or clock()
    chat_name = nonempty(data.get("chatName"))
    sender_name = None if from_me else nonempty(data.get("senderName"))
    sender, group = None, None
    if flag(data.get("isGroup")) or (phone and is_group(phone)):
        contact = party(phone, name=chat_name)
        group = Group(id=phone or "unknown-group", name=chat_name)
        participant = (nonempty(data.get("participantPhone")), nonempty(data.get("participantLid")))
        sender = party(*participant, name=sender_name)
    else:
        lid = None if from_me else nonempty(data.get("senderLid"))
        contact = party(phone, lid, name=chat_name if from_me else sender_name or chat_name)
    content = _content(data)
    if flag(data.get("isEdit")):
        text = content.text if content.media is None else content.media.caption
        edit = MessageEdit(
            provider_message_id=message_id, text=text, at=sent_at, contact=contact, from_me=from_me
        )
        out.edits.append(edit)
        return
    envelope = Envelope(
        provider_message_id=message_id,
        sent_at=sent_at,
        contact=contact,
        from_me=from_me,
        sender=sender,
        group=group,
        reply_to=ident(data.get("referenceMessageId")),
        forwarded=flag(data.get("forwarded")),
    )
    out.messages.append(build_message(envelope, content, data))


def _media(kind: MessageKind, part: JsonDict, url_key: str) -> Content:
    media = Media(
        url=nonempty(part.get(url_key)),
        mime_type=nonempty(part.get("mimeType")),
        caption=string(part.get("caption")),
        filename=nonempty(part.get("fileName")) if kind is MessageKind.DOCUMENT else None,
        seconds=integer(part.get("seconds")),
        voice=kind is MessageKind.AUDIO and flag(part.get("ptt")),
        animated=flag(part.get("isGif")) or flag(part.get("isAnimated")),
    )
    return Content(kind, media=media, raw_type=kind.value)


def _location(part: JsonDict) -> Content:
    lat, lng = number(part.get("latitude")), number(part.get("longitude"))
    if lat is None or lng is None:
        return unsupported("location")
    place = Location(
        latitude=lat,
        longitude=lng,
        name=nonempty(part.get("name")),
        address=nonempty(part.get("address")),
        url=nonempty(part.get("url")),
    )
    return Content(MessageKind.LOCATION, location=place, raw_type="location")


def _contact(part: JsonDict) -> Content:
    phones = tuple(display_phone(p) for p in arr(part.get("phones"))[:20] if isinstance(p, str))
    card = SharedContact(
        name=nonempty(part.get("displayName")), phones=phones, vcard=string(part.get("vCard"))
    )
    return Content(MessageKind.CONTACTS, contacts=(card,), raw_type="contact")


def _reaction(part: JsonDict) -> Content:
    target = ident(obj(part.get("referencedMessage")).get("messageId"))
    if target is None:
        return unsupported("reaction")
    reaction = Reaction(target_message_id=target, emoji=nonempty(part.get("value")))
    return Content(MessageKind.REACTION, reaction=reaction, raw_type="reaction")


def _buttons(part: JsonDict) -> Content:
    reply = InteractiveReply(
        kind="button", reply_id=ident(part.get("buttonId")), title=nonempty(part.get("message"))
    )
    return Content(MessageKind.INTERACTIVE, interactive=reply, raw_type="buttonsResponseMessage")


def _list(part: JsonDict) -> Content:
    reply = InteractiveReply(
        kind="list",
        reply_id=ident(part.get("selectedRowId")),
        title=nonempty(part.get("title")),
        description=nonempty(part.get("message")),
    )
    return Content(MessageKind.INTERACTIVE, interactive=reply, raw_type="listResponseMessage")


_READERS: Final[dict[str, Callable[[JsonDict], Content]]] = {
    "text": lambda p: Content(MessageKind.TEXT, text=string(p.get("message")), raw_type="text"),
    "image": lambda p: _media(MessageKind.IMAGE, p, "imageUrl"),
    "audio": lambda p: _media(MessageKind.AUDIO, p, "audioUrl"),
    "video": lambda p: _media(MessageKind.VIDEO, p, "videoUrl"),
    "document": lambda p: _media(MessageKind.DOCUMENT, p, "documentUrl"),
    "sticker": lambda p: _media(MessageKind.STICKER, p, "stickerUrl"),
    "location": _location,
    "contact": _contact,
    "reaction": _reaction,
    "buttonsResponseMessage": _buttons,
    "listResponseMessage": _list,
}


def _content(data: JsonDict) -> Content:
    for key, reader in _READERS.items():
        part = data.get(key)
        if isinstance(part, dict):
            return reader(part)
    notification = nonempty(data.get("notification"))
    if notification is not None:
        return Content(MessageKind.SYSTEM, text=notification, raw_type="notification")
    if flag(data.get("waitingMessage")):
        return unsupported("waitingMessage")
    other = next((k for k, v in data.items() if isinstance(v, dict)), None)
    return unsupported(other if other and len(other) <= 64 else None)


def _status(data: JsonDict, out: ParsedWebhook, clock: Clock) -> None:
    name = (string(data.get("status")) or "").upper()
    if name in READ_SELF:
        out.ignored.append("read-self receipt")
        return
    status = STATUS_MAP.get(name)
    ids = [i for i in (ident(x) for x in arr(data.get("ids"))) if i is not None]
    if status is None or not ids:
        out.ignored.append("unknown status" if status is None else "status without ids")
        return
    phone = nonempty(data.get("phone"))
    at = unix_millis(data.get("momment")) or clock()
    for message_id in ids:
        update = StatusUpdate(
            provider_message_id=message_id,
            status=status,
            at=at,
            recipient=party(phone) if phone else None,
        )
        out.statuses.append(update)


def _delivery(data: JsonDict, out: ParsedWebhook, clock: Clock) -> None:
    message_id = ident(data.get("messageId"))
    if message_id is None:
        out.ignored.append("delivery without id")
        return
    error = nonempty(data.get("error"))
    phone = nonempty(data.get("phone"))
    update = StatusUpdate(
        provider_message_id=message_id,
        status=DeliveryStatus.FAILED if error else DeliveryStatus.SENT,
        at=unix_millis(data.get("momment")) or clock(),
        recipient=party(phone) if phone else None,
        error_code=ident(data.get("errorCode")) if error else None,
        error_text=error,
    )
    out.statuses.append(update)


_HANDLERS: Final[dict[str, Callable[[JsonDict, ParsedWebhook, Clock], None]]] = {
    "ReceivedCallback": _received,
    "MessageStatusCallback": _status,
    "DeliveryCallback": _delivery,
}
