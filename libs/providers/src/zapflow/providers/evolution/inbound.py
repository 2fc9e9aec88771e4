"""Evolution API v2 webhooks -> canonical events.

Envelope: ``{event, instance, data, destination, date_time, sender, server_url, apikey}``;
``event`` is dotted lowercase (``messages.upsert``) or, with some configurations,
``MESSAGES_UPSERT``; both are accepted. ``data`` is one record (or a list of them). Quirks handled:
text rewritten to ``message.conversation`` with its ``contextInfo`` moved to ``data.contextInfo``;
byte fields as index objects; 64-bit ints as ``{low, high}``; LID addressing (``remoteJidAlt``,
``participantAlt``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from zapflow.contracts.model import (
    DeliveryStatus,
    Group,
    MessageEdit,
    MessageRevoke,
    Party,
    StatusUpdate,
)
from zapflow.providers._canonical import Envelope, build_message
from zapflow.providers._waproto import plain_text, read_message
from zapflow.providers._wire import (
    JsonDict,
    ci_get,
    decode_json,
    flag,
    ident,
    integer,
    nonempty,
    obj,
    objs,
    rfc3339,
    string,
    unix_millis,
    unix_seconds,
)
from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.identity import receiving_identities
from zapflow.providers.phones import is_group, is_lid, normalize_phone, party, same_phone

PROVIDER: Final = "evolution"
STATUS_MAP: Final[dict[str, DeliveryStatus]] = {
    "ERROR": DeliveryStatus.FAILED,
    "PENDING": DeliveryStatus.QUEUED,
    "SERVER_ACK": DeliveryStatus.SENT,
    "DELIVERY_ACK": DeliveryStatus.DELIVERED,
    "READ": DeliveryStatus.READ,
    "PLAYED": DeliveryStatus.PLAYED,
}
NUMERIC_STATUS: Final = ("ERROR", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED")
"""Baileys' numeric ack values 0-5, rendered as names by ``renderStatus``."""

Clock = Callable[[], datetime]
Handler = Callable[[JsonDict, ParsedWebhook, datetime], None]


def event_name(raw: str) -> str:
    """``MESSAGES_UPSERT`` and ``messages.upsert`` both give ``messages.upsert``."""
    return raw.strip().lower().replace("_", ".")


def parse(body: bytes, *, channel_phone: str | None, clock: Clock) -> ParsedWebhook:
    data = decode_json(body, provider=PROVIDER)
    if not isinstance(data, dict) or not isinstance(data.get("event"), str) or "data" not in data:
        raise WebhookPayloadError("not an Evolution event envelope", provider=PROVIDER)
    out = ParsedWebhook(receiving=list(receiving_identities(PROVIDER, data)))
    event = event_name(data["event"])
    owner = nonempty(data.get("sender"))
    if channel_phone and normalize_phone(owner) and not same_phone(owner, channel_phone):
        out.ignored.append("addressed to another channel number")
        return out
    handler = _HANDLERS.get(event)
    if handler is None:
        out.ignored.append(event if len(event) <= 64 else "unknown event")
        return out
    at = rfc3339(data.get("date_time")) or clock()
    for record in _records(data["data"]):
        try:
            handler(record, out, at)
        except ValidationError:
            out.ignored.append("invalid record")
    return out


def _records(value: Any) -> list[JsonDict]:
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return objs(value["messages"])  # raw Baileys upsert shape
    return objs(value)


def _conversation(key: JsonDict, name: str | None) -> tuple[Party, Party | None, Group | None]:
    """(contact, sender, group) from a message key."""
    remote = nonempty(ci_get(key, "remoteJid"))
    if remote and is_group(remote):
        author = party(
            nonempty(key.get("participant")), nonempty(key.get("participantAlt")), name=name
        )
        return party(remote), author, Group(id=remote)
    return party(remote, nonempty(key.get("remoteJidAlt")), name=name), None, None


def _message(record: JsonDict, out: ParsedWebhook, at: datetime, *, echo: bool) -> None:
    key = obj(record.get("key"))
    message_id = ident(ci_get(key, "id"))
    if message_id is None:
        out.ignored.append("message without id")
        return
    from_me = echo or flag(key.get("fromMe"))
    sent_at = unix_seconds(record.get("messageTimestamp")) or at
    contact, sender, group = _conversation(
        key, None if from_me else nonempty(record.get("pushName"))
    )
    message = obj(record.get("message"))
    wa = read_message(message, media_url=nonempty(message.get("mediaUrl")))
    if wa.revoke_target:
        revoke = MessageRevoke(
            provider_message_id=wa.revoke_target,
            at=sent_at,
            contact=contact,
            from_me=from_me,
            change_message_id=_own(message_id, wa.revoke_target),
        )
        out.revokes.append(revoke)
        return
    if wa.edit_target:
        edit = MessageEdit(
            provider_message_id=wa.edit_target,
            text=wa.edit_text,
            at=sent_at,
            contact=contact,
            from_me=from_me,
            change_message_id=_own(message_id, wa.edit_target),
        )
        out.edits.append(edit)
        return
    if wa.content is None:
        out.ignored.append(wa.ignored or "empty message")
        return
    moved = obj(record.get("contextInfo"))  # where Evolution moves extendedText's contextInfo
    envelope = Envelope(
        provider_message_id=message_id,
        sent_at=sent_at,
        contact=contact,
        from_me=from_me,
        sender=sender,
        group=group,
        reply_to=wa.reply_to or ident(ci_get(moved, "stanzaId")),
        forwarded=wa.forwarded or flag(ci_get(moved, "isForwarded")),
    )
    out.messages.append(build_message(envelope, wa.content, record))


def _own(change_id: str | None, target: str) -> str | None:
    """The id of an edit or revoke message itself, when it is not the target's."""
    return change_id if change_id and change_id != target else None


def _status(record: JsonDict, out: ParsedWebhook, at: datetime) -> None:
    key = obj(record.get("key"))
    message_id = ident(record.get("keyId")) or ident(ci_get(key, "id"))
    raw = record.get("status", obj(record.get("update")).get("status"))
    code = integer(raw)
    name = NUMERIC_STATUS[code] if code is not None and 0 <= code < 6 else (string(raw) or "")
    name = name.upper()
    status = STATUS_MAP.get(name)
    from_me = flag(record.get("fromMe")) or flag(key.get("fromMe"))
    if message_id is None or status is None:
        reason = "deleted status" if name == "DELETED" else "status without id or known value"
        out.ignored.append(reason)
        return
    if not from_me:
        read = status is DeliveryStatus.READ
        out.ignored.append("read-self receipt" if read else "receipt for inbound message")
        return
    remote = nonempty(record.get("remoteJid")) or nonempty(ci_get(key, "remoteJid"))
    participant = nonempty(record.get("participant")) or nonempty(key.get("participant"))
    who = participant if remote and is_group(remote) and participant else remote
    update = StatusUpdate(
        provider_message_id=message_id,
        status=status,
        at=unix_seconds(record.get("messageTimestamp")) or at,
        recipient=party(who) if who else None,
        error_code="ERROR" if status is DeliveryStatus.FAILED else None,
        error_text="provider reported ERROR" if status is DeliveryStatus.FAILED else None,
    )
    out.statuses.append(update)


def _edited(record: JsonDict, out: ParsedWebhook, at: datetime) -> None:
    wa = read_message(obj(record.get("message")))
    proto = obj(ci_get(record, "protocolMessage")) or record
    key = obj(proto.get("key"))
    target = wa.edit_target or ident(ci_get(key, "id"))
    if target is None:
        out.ignored.append("edit without target")
        return
    text = wa.edit_text if wa.edit_target else plain_text(ci_get(proto, "editedMessage"))
    contact, _, _ = _conversation(key, None)
    own = ident(ci_get(obj(record.get("key")), "id")) if proto is not record else None
    edit = MessageEdit(
        provider_message_id=target,
        text=text,
        at=unix_millis(ci_get(proto, "timestampMs")) or at,
        contact=contact,
        from_me=flag(key.get("fromMe")),
        change_message_id=_own(own, target),
    )
    out.edits.append(edit)


def _deleted(record: JsonDict, out: ParsedWebhook, at: datetime) -> None:
    key = obj(record.get("key")) or record
    target = ident(ci_get(key, "id"))
    if target is None:
        out.ignored.append("delete without target")
        return
    contact, _, _ = _conversation(key, None)
    revoke = MessageRevoke(
        provider_message_id=target, at=at, contact=contact, from_me=flag(key.get("fromMe"))
    )
    out.revokes.append(revoke)


def _contact(record: JsonDict, out: ParsedWebhook, at: datetime) -> None:
    jid = nonempty(record.get("remoteJid")) or nonempty(record.get("id"))
    if jid is None or is_group(jid) or not (normalize_phone(jid) or is_lid(jid)):
        out.ignored.append("contact without person id")
        return
    name = nonempty(record.get("pushName")) or nonempty(record.get("name"))
    out.contacts.append(party(jid, nonempty(record.get("remoteJidAlt")), name=name))


_HANDLERS: Final[dict[str, Handler]] = {
    "messages.upsert": lambda r, o, a: _message(r, o, a, echo=False),
    "send.message": lambda r, o, a: _message(r, o, a, echo=True),
    "messages.update": _status,
    "messages.edited": _edited,
    "messages.delete": _deleted,
    "contacts.upsert": _contact,
    "contacts.update": _contact,
    "contacts.set": _contact,
}
