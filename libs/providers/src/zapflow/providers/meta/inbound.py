"""Meta Cloud API webhooks -> canonical events.

Envelope: ``object: whatsapp_business_account`` with ``entry[].changes[]``; ``field: messages``
carries ``value.messages[]`` (customer -> us) and ``value.statuses[]`` (receipts);
``field: smb_message_echoes`` carries ``value.message_echoes[]`` (Business-app "coexistence"
numbers: what the business typed on the phone). One POST may batch many entries, changes,
messages and statuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
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
    MessageRevoke,
    Party,
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
    decode_json,
    flag,
    ident,
    integer,
    nonempty,
    number,
    obj,
    objs,
    string,
    unix_seconds,
)
from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.identity import receiving_identities
from zapflow.providers.meta.outbound import MAX_OPAQUE
from zapflow.providers.phones import party, same_phone

PROVIDER: Final = "meta"
OBJECT: Final = "whatsapp_business_account"
STATUS_MAP: Final[dict[str, DeliveryStatus]] = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "played": DeliveryStatus.PLAYED,
    "failed": DeliveryStatus.FAILED,
}
_MEDIA: Final[dict[str, MessageKind]] = {
    "image": MessageKind.IMAGE,
    "audio": MessageKind.AUDIO,
    "video": MessageKind.VIDEO,
    "document": MessageKind.DOCUMENT,
    "sticker": MessageKind.STICKER,
}

Clock = Callable[[], datetime]


def parse(body: bytes, *, channel_phone: str | None, clock: Clock) -> ParsedWebhook:
    data = decode_json(body, provider=PROVIDER)
    if not isinstance(data, dict) or data.get("object") != OBJECT:
        raise WebhookPayloadError("not a whatsapp_business_account envelope", provider=PROVIDER)
    if not isinstance(data.get("entry"), list):
        raise WebhookPayloadError("envelope without entry list", provider=PROVIDER)
    out = ParsedWebhook(receiving=list(receiving_identities(PROVIDER, data)))
    for entry in objs(data["entry"]):
        for change in objs(entry.get("changes")):
            _change(change, out, channel_phone, clock)
    return out


def _change(change: JsonDict, out: ParsedWebhook, channel_phone: str | None, clock: Clock) -> None:
    field = string(change.get("field"))
    value = obj(change.get("value"))
    if field not in ("messages", "smb_message_echoes"):
        out.ignored.append(f"field {field}" if field and len(field) <= 64 else "unknown field")
        return
    display = nonempty(obj(value.get("metadata")).get("display_phone_number"))
    if channel_phone and display and not same_phone(display, channel_phone):
        out.ignored.append("addressed to another channel number")
        return
    people = _people(value.get("contacts"))
    for item in objs(value.get("messages")):
        _guarded(item, out, people, echo=False, clock=clock)
    for item in objs(value.get("message_echoes")):
        _guarded(item, out, [], echo=True, clock=clock)
    for item in objs(value.get("statuses")):
        try:
            _status(item, out, clock)
        except ValidationError:
            out.ignored.append("invalid status item")
    out.ignored.extend("webhook error" for _ in objs(value.get("errors")))


@dataclass(frozen=True)
class _Person:
    """One ``value.contacts[]`` item: the customer's ids and profile name."""

    wa_id: str | None
    user_id: str | None
    name: str | None


def _people(value: object) -> list[_Person]:
    people = []
    for contact in objs(value):
        person = _Person(
            wa_id=ident(contact.get("wa_id")),
            user_id=ident(contact.get("user_id")),
            name=nonempty(obj(contact.get("profile")).get("name")),
        )
        if person.wa_id or person.user_id:
            people.append(person)
    return people


def _person(people: list[_Person], wa_id: str | None, user_id: str | None) -> _Person | None:
    """The contacts[] item of a message's sender: by wa_id, else by BSUID, else the only one."""
    for person in people:
        if (wa_id and person.wa_id == wa_id) or (user_id and person.user_id == user_id):
            return person
    return people[0] if len(people) == 1 else None


def _customer(item: JsonDict, people: list[_Person], *, echo: bool) -> Party:
    """The customer of a message: ``from`` / ``from_user_id`` (``to`` / ``to_user_id`` for our
    echoes), completed from ``contacts[]`` (profile name, BSUID beside the wa_id)."""
    wa_id = ident(item.get("to") if echo else item.get("from"))
    user_id = ident(item.get("to_user_id") if echo else item.get("from_user_id"))
    person = None if echo else _person(people, wa_id, user_id)
    if person is not None:
        wa_id, user_id = wa_id or person.wa_id, user_id or person.user_id
    return party(wa_id, name=person.name if person else None, user_id=user_id)


def _guarded(
    item: JsonDict, out: ParsedWebhook, people: list[_Person], *, echo: bool, clock: Clock
) -> None:
    try:
        _message(item, out, people, echo=echo, clock=clock)
    except ValidationError:
        out.ignored.append("invalid message item")


def _message(
    item: JsonDict, out: ParsedWebhook, people: list[_Person], *, echo: bool, clock: Clock
) -> None:
    message_id = ident(item.get("id"))
    if message_id is None:
        out.ignored.append("message without id")
        return
    sent_at = unix_seconds(item.get("timestamp")) or clock()
    contact = _customer(item, people, echo=echo)
    kind = string(item.get("type"))
    if kind == "edit":
        edit = obj(item.get("edit"))
        target = ident(edit.get("original_message_id"))
        if target:
            text = _edited_text(obj(edit.get("message")))
            out.edits.append(
                MessageEdit(
                    provider_message_id=target,
                    text=text,
                    at=sent_at,
                    contact=contact,
                    from_me=echo,
                    change_message_id=message_id,
                )
            )
            return
    if kind == "revoke":
        target = ident(obj(item.get("revoke")).get("original_message_id"))
        if target:
            out.revokes.append(
                MessageRevoke(
                    provider_message_id=target,
                    at=sent_at,
                    contact=contact,
                    from_me=echo,
                    change_message_id=message_id,
                )
            )
            return
    group_id = ident(item.get("group_id"))
    context = obj(item.get("context"))
    envelope = Envelope(
        provider_message_id=message_id,
        sent_at=sent_at,
        contact=party(group_id) if group_id else contact,
        from_me=echo,
        sender=contact if group_id else None,
        group=Group(id=group_id) if group_id else None,
        reply_to=ident(context.get("id")),
        forwarded=flag(context.get("forwarded")) or flag(context.get("frequently_forwarded")),
    )
    content = _content(item, kind)
    if "referral" in item:  # click-to-WhatsApp ad context has no canonical field: keep raw
        content = replace(content, keep_raw=True)
    out.messages.append(build_message(envelope, content, item))


def _edited_text(message: JsonDict) -> str | None:
    kind = string(message.get("type"))
    part = obj(message.get(kind)) if kind else {}
    return string(part.get("body")) if kind == "text" else string(part.get("caption"))


def _content(item: JsonDict, kind: str | None) -> Content:
    part = obj(item.get(kind)) if kind else {}
    if kind == "text":
        text = string(part.get("body"))
        return Content(MessageKind.TEXT, text=text, raw_type=kind, keep_raw=text is None)
    if kind in _MEDIA:
        return Content(_MEDIA[kind], media=_media(kind, part), raw_type=kind)
    if kind == "location":
        return _location(part)
    if kind == "contacts":
        return Content(
            MessageKind.CONTACTS, contacts=_contacts(item.get("contacts")), raw_type=kind
        )
    if kind == "reaction":
        target = ident(part.get("message_id"))
        if target is None:
            return unsupported(kind)
        reaction = Reaction(target_message_id=target, emoji=nonempty(part.get("emoji")))
        return Content(MessageKind.REACTION, reaction=reaction, raw_type=kind)
    if kind == "interactive":
        return _interactive(part)
    if kind == "button":
        reply = InteractiveReply(
            kind="template_button",
            reply_id=ident(part.get("payload")),
            title=nonempty(part.get("text")),
        )
        return Content(MessageKind.INTERACTIVE, interactive=reply, raw_type=kind)
    if kind == "system":
        return Content(MessageKind.SYSTEM, text=string(part.get("body")), raw_type=kind)
    if kind == "template":  # echo of a template the business sent
        return Content(MessageKind.TEMPLATE, raw_type=kind, keep_raw=True)
    return unsupported(kind)


def _media(kind: str, part: JsonDict) -> Media:
    return Media(
        provider_media_id=ident(part.get("id")),
        url=nonempty(part.get("url")),
        mime_type=nonempty(part.get("mime_type")),
        sha256=nonempty(part.get("sha256")),
        filename=nonempty(part.get("filename")) if kind == "document" else None,
        caption=string(part.get("caption")),
        size_bytes=integer(part.get("file_size")),
        voice=kind == "audio" and flag(part.get("voice")),
        animated=kind == "sticker" and flag(part.get("animated")),
    )


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


def _contacts(value: object) -> tuple[SharedContact, ...]:
    shared: list[SharedContact] = []
    for card in objs(value)[:100]:
        phones = []
        for entry in objs(card.get("phones")):
            raw = ident(entry.get("wa_id")) or ident(entry.get("phone"))
            if raw:
                phones.append(display_phone(raw))
        name = nonempty(obj(card.get("name")).get("formatted_name"))
        shared.append(SharedContact(name=name, phones=tuple(phones)))
    return tuple(shared)


def _interactive(part: JsonDict) -> Content:
    kind = string(part.get("type"))
    if kind not in ("button_reply", "list_reply"):
        return unsupported(f"interactive.{kind}" if kind and len(kind) <= 64 else "interactive")
    reply = obj(part.get(kind))
    interactive = InteractiveReply(
        kind="button" if kind == "button_reply" else "list",
        reply_id=ident(reply.get("id")),
        title=nonempty(reply.get("title")),
        description=nonempty(reply.get("description")),
    )
    return Content(MessageKind.INTERACTIVE, interactive=interactive, raw_type="interactive")


def _status(item: JsonDict, out: ParsedWebhook, clock: Clock) -> None:
    message_id = ident(item.get("id"))
    status = STATUS_MAP.get(string(item.get("status")) or "")
    if message_id is None or status is None:
        out.ignored.append("status without id" if message_id is None else "unknown status")
        return
    recipient_id = ident(item.get("recipient_id"))
    recipient_user = ident(item.get("recipient_user_id"))
    error = next(iter(objs(item.get("errors"))), {})
    out.statuses.append(
        StatusUpdate(
            provider_message_id=message_id,
            status=status,
            at=unix_seconds(item.get("timestamp")) or clock(),
            recipient=(
                party(recipient_id, user_id=recipient_user)
                if recipient_id or recipient_user
                else None
            ),
            error_code=ident(error.get("code")),
            error_text=_error_text(error) if error else None,
            client_message_id=_opaque(item.get("biz_opaque_callback_data")),
        )
    )


def _opaque(value: object) -> str | None:
    """``biz_opaque_callback_data`` as sent (at most 512 characters), else None."""
    text = nonempty(value)
    return text if text is not None and len(text) <= MAX_OPAQUE else None


def _error_text(error: JsonDict) -> str | None:
    title = nonempty(error.get("title")) or nonempty(error.get("message"))
    details = nonempty(obj(error.get("error_data")).get("details"))
    parts = [p for p in (title, details) if p]
    return ": ".join(parts) if parts else None
