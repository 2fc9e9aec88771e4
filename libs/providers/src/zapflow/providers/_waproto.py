"""WhatsApp Web ``Message`` protobufs rendered as JSON, shared by Evolution and WuzAPI.

Both forward the same ``waE2E.Message`` protobuf, serialized differently: Evolution (Baileys,
protobufjs) uses camelCase names (``url``, ``fileSha256``, ``contextInfo.stanzaId``), bytes as
index objects and 64-bit ints as ``{low, high}``, enums as names; WuzAPI (whatsmeow, Go
``encoding/json``) uses Go names (``URL``, ``fileSHA256``, ``stanzaID``, ``key.ID``), bytes as
base64, enums as numbers. Every read goes through case-insensitive lookups and the ``_wire``
coercions, so one parser serves both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from zapflow.contracts.model import (
    InteractiveReply,
    Location,
    Media,
    MessageKind,
    Reaction,
    SharedContact,
)
from zapflow.providers._canonical import Content, unsupported, vcard_phones
from zapflow.providers._wire import (
    JsonDict,
    b64,
    ci_get,
    flag,
    ident,
    integer,
    nonempty,
    number,
    obj,
    objs,
    string,
)

_WRAPPERS: Final = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
    "deviceSentMessage",
    "botInvokeMessage",
    "lottieStickerMessage",
    "groupMentionedMessage",
)
_METADATA: Final = frozenset(
    {"messagecontextinfo", "base64", "mediaurl", "contextinfo", "senderkeydistributionmessage"}
)
_REVOKE: Final = (0, "REVOKE")
_EDIT: Final = (14, "MESSAGE_EDIT")


@dataclass(frozen=True)
class WaMessage:
    """What a protobuf message means: displayable content, or an edit/revoke, or nothing."""

    content: Content | None
    context: JsonDict
    edit_target: str | None = None
    edit_text: str | None = None
    revoke_target: str | None = None
    ignored: str | None = None

    @property
    def reply_to(self) -> str | None:
        return ident(ci_get(self.context, "stanzaId"))

    @property
    def forwarded(self) -> bool:
        return flag(ci_get(self.context, "isForwarded"))


def unwrap(message: JsonDict) -> JsonDict:
    """Strip ephemeral/view-once/edited/device-sent wrappers (bounded depth)."""
    for _ in range(8):
        for wrapper in _WRAPPERS:
            inner = obj(ci_get(obj(ci_get(message, wrapper)), "message"))
            if inner:
                message = inner
                break
        else:
            return message
    return message


def _content_key(message: JsonDict) -> str | None:
    for key, value in message.items():
        if not isinstance(key, str) or key.lower() in _METADATA:
            continue
        if isinstance(value, dict) or (key == "conversation" and isinstance(value, str)):
            return key
    return None


def plain_text(message: Any) -> str | None:
    """The text (or caption) of a message, for edits."""
    inner = unwrap(obj(message))
    text = string(ci_get(inner, "conversation"))
    if text is not None:
        return text
    for key in ("extendedTextMessage", "imageMessage", "videoMessage", "documentMessage"):
        part = obj(ci_get(inner, key))
        found = string(ci_get(part, "text")) or string(ci_get(part, "caption"))
        if found is not None:
            return found
    return None


def _media(kind: MessageKind, m: JsonDict, media_url: str | None) -> Media:
    is_document = kind is MessageKind.DOCUMENT
    return Media(
        url=media_url or nonempty(ci_get(m, "url")),
        mime_type=nonempty(ci_get(m, "mimetype")),
        sha256=b64(ci_get(m, "fileSha256")),
        filename=nonempty(ci_get(m, "fileName")) if is_document else None,
        caption=string(ci_get(m, "caption")),
        size_bytes=integer(ci_get(m, "fileLength")),
        seconds=integer(ci_get(m, "seconds")),
        voice=kind is MessageKind.AUDIO and flag(ci_get(m, "ptt")),
        animated=flag(ci_get(m, "isAnimated")) or flag(ci_get(m, "gifPlayback")),
    )


def _location(m: JsonDict) -> Content:
    lat, lng = number(ci_get(m, "degreesLatitude")), number(ci_get(m, "degreesLongitude"))
    if lat is None or lng is None:
        return unsupported("locationMessage")
    place = Location(
        latitude=lat,
        longitude=lng,
        name=nonempty(ci_get(m, "name")),
        address=nonempty(ci_get(m, "address")),
        url=nonempty(ci_get(m, "url")),
    )
    return Content(MessageKind.LOCATION, location=place)


def _contact(m: JsonDict) -> SharedContact:
    vcard = string(ci_get(m, "vcard"))
    return SharedContact(
        name=nonempty(ci_get(m, "displayName")), phones=vcard_phones(vcard), vcard=vcard
    )


def _contacts_array(m: JsonDict) -> Content:
    shared = tuple(_contact(c) for c in objs(ci_get(m, "contacts"))[:100])
    return Content(MessageKind.CONTACTS, contacts=shared)


def _reaction(m: JsonDict) -> Content:
    target = ident(ci_get(obj(ci_get(m, "key")), "id"))
    if target is None:
        return unsupported("reactionMessage")
    emoji = nonempty(ci_get(m, "text"))
    return Content(MessageKind.REACTION, reaction=Reaction(target_message_id=target, emoji=emoji))


def _buttons_response(m: JsonDict) -> Content:
    reply = InteractiveReply(
        kind="button",
        reply_id=ident(ci_get(m, "selectedButtonId")),
        title=nonempty(ci_get(m, "selectedDisplayText")),
    )
    return Content(MessageKind.INTERACTIVE, interactive=reply)


def _list_response(m: JsonDict) -> Content:
    reply = InteractiveReply(
        kind="list",
        reply_id=ident(ci_get(obj(ci_get(m, "singleSelectReply")), "selectedRowId")),
        title=nonempty(ci_get(m, "title")),
        description=nonempty(ci_get(m, "description")),
    )
    return Content(MessageKind.INTERACTIVE, interactive=reply)


def _template_button(m: JsonDict) -> Content:
    reply = InteractiveReply(
        kind="template_button",
        reply_id=ident(ci_get(m, "selectedId")),
        title=nonempty(ci_get(m, "selectedDisplayText")),
    )
    return Content(MessageKind.INTERACTIVE, interactive=reply)


def _native_flow(m: JsonDict) -> Content:
    flow = obj(ci_get(m, "nativeFlowResponseMessage"))
    params_text = string(ci_get(flow, "paramsJson"))
    try:
        params = obj(json.loads(params_text)) if params_text and len(params_text) < 10_000 else {}
    except (ValueError, RecursionError):
        params = {}
    reply = InteractiveReply(
        kind="button",
        reply_id=ident(params.get("id")),
        title=nonempty(ci_get(obj(ci_get(m, "body")), "text")),
    )
    return Content(MessageKind.INTERACTIVE, interactive=reply, keep_raw=reply.reply_id is None)


def _template(m: JsonDict) -> Content:
    hydrated = obj(ci_get(m, "hydratedTemplate")) or obj(ci_get(m, "hydratedFourRowTemplate"))
    text = string(ci_get(hydrated, "hydratedContentText"))
    return Content(MessageKind.TEMPLATE, text=text, keep_raw=text is None)


_MEDIA_KINDS: Final[dict[str, MessageKind]] = {
    "imagemessage": MessageKind.IMAGE,
    "videomessage": MessageKind.VIDEO,
    "ptvmessage": MessageKind.VIDEO,
    "audiomessage": MessageKind.AUDIO,
    "documentmessage": MessageKind.DOCUMENT,
    "stickermessage": MessageKind.STICKER,
}
_HANDLERS: Final[dict[str, Callable[[JsonDict], Content]]] = {
    "locationmessage": _location,
    "livelocationmessage": _location,
    "contactmessage": lambda m: Content(MessageKind.CONTACTS, contacts=(_contact(m),)),
    "contactsarraymessage": _contacts_array,
    "reactionmessage": _reaction,
    "buttonsresponsemessage": _buttons_response,
    "listresponsemessage": _list_response,
    "templatebuttonreplymessage": _template_button,
    "interactiveresponsemessage": _native_flow,
    "templatemessage": _template,
}


def _protocol(m: JsonDict) -> WaMessage:
    kind = ci_get(m, "type")
    target = ident(ci_get(obj(ci_get(m, "key")), "id"))
    if kind in _REVOKE and target:
        return WaMessage(None, {}, revoke_target=target)
    if kind in _EDIT and target:
        edited = plain_text(ci_get(m, "editedMessage"))
        return WaMessage(None, {}, edit_target=target, edit_text=edited)
    return WaMessage(None, {}, ignored="protocol message")


def read_message(message: Any, *, media_url: str | None = None) -> WaMessage:
    """Interpret a protobuf message; unknown content is ``unsupported`` (never an exception)."""
    inner = unwrap(obj(message))
    key = _content_key(inner)
    if key is None:
        if any(k.lower() == "senderkeydistributionmessage" for k in inner if isinstance(k, str)):
            return WaMessage(None, {}, ignored="sender key distribution")
        return WaMessage(unsupported(None), {})
    lowered = key.lower()
    value = inner[key]
    if lowered == "conversation":
        return WaMessage(Content(MessageKind.TEXT, text=value, raw_type=key), {})
    part = obj(value)
    context = obj(ci_get(part, "contextInfo"))
    if lowered == "protocolmessage":
        return _protocol(part)
    if lowered == "extendedtextmessage":
        text = string(ci_get(part, "text"))
        content = Content(MessageKind.TEXT, text=text, raw_type=key, keep_raw=text is None)
    elif lowered in _MEDIA_KINDS:
        kind = _MEDIA_KINDS[lowered]
        content = Content(kind, media=_media(kind, part, media_url), raw_type=key)
    elif lowered in _HANDLERS:
        content = _HANDLERS[lowered](part)
        content = replace(content, raw_type=key)
    else:
        content = unsupported(key)
    return WaMessage(content, context)
