"""WuzAPI webhooks -> canonical events.

Two body formats carry the same event map ``{type, event, state?, base64?, mimeType?, fileName?,
s3?, isSticker?, stickerAnimated?, instanceName, userID}``:

* form (default): ``application/x-www-form-urlencoded`` with ``jsonData`` (the map as a JSON
  string), ``instanceName`` and ``userID``;
* JSON (``WEBHOOK_FORMAT=json``): the map itself.

``event`` is the whatsmeow struct: ``Info`` (``Chat``, ``Sender``, ``IsFromMe``, ``IsGroup``,
``SenderAlt``/``RecipientAlt`` for LID addressing, ``ID``, ``PushName``, RFC 3339 ``Timestamp``,
``Edit``) and ``Message`` (the protobuf, read by ``_waproto``). Receipts (``type: ReadReceipt``)
carry ``state`` ``Delivered``/``Read``/``ReadSelf`` and ``event.MessageIDs``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Final
from urllib.parse import parse_qs

from pydantic import ValidationError

from zapflow.contracts.model import (
    DeliveryStatus,
    Group,
    MessageEdit,
    MessageKind,
    MessageRevoke,
    StatusUpdate,
)
from zapflow.providers._canonical import Envelope, build_message
from zapflow.providers._waproto import read_message
from zapflow.providers._wire import (
    JsonDict,
    arr,
    ci_get,
    decode_json,
    flag,
    ident,
    nonempty,
    obj,
    rfc3339,
    string,
    unix_seconds,
)
from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.identity import receiving_identities
from zapflow.providers.phones import GROUP_SERVER, is_group, party, split_jid

PROVIDER: Final = "wuzapi"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
FORM_JSON_FIELD: Final = "jsonData"
RECEIPT_STATES: Final[dict[str, DeliveryStatus]] = {
    "Delivered": DeliveryStatus.DELIVERED,
    "Read": DeliveryStatus.READ,
}
RECEIPT_TYPES: Final[dict[str, DeliveryStatus]] = {
    "": DeliveryStatus.DELIVERED,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "played": DeliveryStatus.PLAYED,
}
READ_SELF_TYPES: Final = frozenset({"read-self", "played-self"})
_MAX_FORM_FIELDS: Final = 64

Clock = Callable[[], datetime]


def _decode_form(body: bytes) -> JsonDict:
    try:
        fields = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS
        )
    except ValueError as exc:  # UnicodeDecodeError or too many fields
        raise WebhookPayloadError("body is not a url-encoded form", provider=PROVIDER) from exc
    encoded = fields.get(FORM_JSON_FIELD)
    if not encoded:
        raise WebhookPayloadError("form without jsonData field", provider=PROVIDER)
    data = decode_json(encoded[0].encode(), provider=PROVIDER)
    if not isinstance(data, dict):
        raise WebhookPayloadError("jsonData is not a JSON object", provider=PROVIDER)
    for name in ("instanceName", "userID"):
        if name in fields:
            data.setdefault(name, fields[name][0])
    return data


def decode(body: bytes, content_type: str) -> JsonDict:
    """The event map of either body format; the content type decides, else the first byte."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    is_form = media_type == FORM_CONTENT_TYPE
    if not media_type or media_type not in (FORM_CONTENT_TYPE, "application/json", "text/json"):
        is_form = not body.lstrip().startswith(b"{")
    if is_form:
        return _decode_form(body)
    data = decode_json(body, provider=PROVIDER)
    if not isinstance(data, dict):
        raise WebhookPayloadError("body is not a JSON object", provider=PROVIDER)
    return data


def parse(body: bytes, content_type: str, *, clock: Clock) -> ParsedWebhook:
    data = decode(body, content_type)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise WebhookPayloadError("not a WuzAPI event map", provider=PROVIDER)
    out = ParsedWebhook(receiving=list(receiving_identities(PROVIDER, data)))
    handler = _HANDLERS.get(kind)
    if handler is None:
        out.ignored.append(kind if len(kind) <= 64 else "unknown event")
        return out
    try:
        handler(data, out, clock)
    except ValidationError:
        out.ignored.append("invalid event")
    return out


def _message(data: JsonDict, out: ParsedWebhook, clock: Clock) -> None:
    event = obj(data.get("event"))
    info = obj(ci_get(event, "Info"))
    message_id = ident(ci_get(info, "ID"))
    if message_id is None:
        out.ignored.append("message without id")
        return
    chat = nonempty(ci_get(info, "Chat"))
    author = nonempty(ci_get(info, "Sender"))
    if chat and split_jid(chat)[1] in ("broadcast", "newsletter"):
        out.ignored.append("broadcast or newsletter")
        return
    from_me = flag(ci_get(info, "IsFromMe"))
    sent_at = rfc3339(ci_get(info, "Timestamp")) or clock()
    name = None if from_me else nonempty(ci_get(info, "PushName"))
    sender, group = None, None
    if flag(ci_get(info, "IsGroup")) or (chat and split_jid(chat)[1] == GROUP_SERVER):
        contact = party(chat)
        group = Group(id=chat) if chat else None
        sender = party(author, nonempty(ci_get(info, "SenderAlt")), name=name)
    else:
        alt = ci_get(info, "RecipientAlt") if from_me else ci_get(info, "SenderAlt")
        contact = party(chat or author, nonempty(alt), name=name)
    wa = read_message(ci_get(event, "Message"), media_url=nonempty(obj(data.get("s3")).get("url")))
    if wa.revoke_target:
        revoke = MessageRevoke(
            provider_message_id=wa.revoke_target,
            at=sent_at,
            contact=contact,
            from_me=from_me,
            change_message_id=message_id if message_id != wa.revoke_target else None,
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
            change_message_id=message_id if message_id != wa.edit_target else None,
        )
        out.edits.append(edit)
        return
    if wa.content is None:
        out.ignored.append(wa.ignored or "empty message")
        return
    content = wa.content
    if content.kind is MessageKind.STICKER and content.media and flag(data.get("stickerAnimated")):
        content = replace(content, media=content.media.model_copy(update={"animated": True}))
    envelope = Envelope(
        provider_message_id=message_id,
        sent_at=sent_at,
        contact=contact,
        from_me=from_me,
        sender=sender,
        group=group,
        reply_to=wa.reply_to,
        forwarded=wa.forwarded,
    )
    out.messages.append(build_message(envelope, content, event))


def _receipt(data: JsonDict, out: ParsedWebhook, clock: Clock) -> None:
    event = obj(data.get("event"))
    state = string(data.get("state"))
    receipt_type = string(ci_get(event, "Type")) or ""
    if state == "ReadSelf" or receipt_type in READ_SELF_TYPES or flag(ci_get(event, "IsFromMe")):
        out.ignored.append("read-self receipt")
        return
    status = RECEIPT_STATES.get(state) if state else RECEIPT_TYPES.get(receipt_type)
    if receipt_type == "played" and status is not None:
        status = DeliveryStatus.PLAYED  # a played voice note: state says Read, type says more
    ids = [i for i in (ident(x) for x in arr(ci_get(event, "MessageIDs"))) if i is not None]
    if status is None or not ids:
        out.ignored.append("unsupported receipt" if status is None else "receipt without ids")
        return
    chat = nonempty(ci_get(event, "Chat"))
    reader = nonempty(ci_get(event, "Sender"))
    alt = nonempty(ci_get(event, "SenderAlt"))
    who = party(reader, alt) if chat and is_group(chat) else party(chat or reader, alt)
    at = rfc3339(ci_get(event, "Timestamp")) or unix_seconds(ci_get(event, "Timestamp")) or clock()
    for message_id in ids:
        out.statuses.append(
            StatusUpdate(provider_message_id=message_id, status=status, at=at, recipient=who)
        )


_HANDLERS: Final[dict[str, Callable[[JsonDict, ParsedWebhook, Clock], None]]] = {
    "Message": _message,
    "ReadReceipt": _receipt,
    "Receipt": _receipt,
}
