"""Evolution API v2 outbound: ``POST /message/send*/{instance}`` and its answers.

Credentials: ``api_key`` (header ``apikey``; the global key or the instance token) and ``instance``
(the instance name). Text goes to ``sendText``; media by link to ``sendMedia`` (image, video,
document), ``sendWhatsAppAudio`` (voice note) and ``sendSticker``. Templates and interactive
messages are not sent through Evolution (its Baileys buttons are unreliable) and raise
:class:`UnsupportedContentError`. A send answers 201 with the stored message, ``status: PENDING``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from zapflow.contracts.model import DeliveryStatus, MessageKind
from zapflow.providers import _http
from zapflow.providers._wire import (
    JsonDict,
    arr,
    ci_get,
    ident,
    nonempty,
    obj,
    string,
    unix_seconds,
)
from zapflow.providers.base import ChannelConfig, HttpRequestSpec, SendResult
from zapflow.providers.content import OutboundContent, OutboundMedia
from zapflow.providers.errors import (
    InvalidRecipientError,
    ProviderError,
    UnsupportedContentError,
)
from zapflow.providers.evolution.inbound import STATUS_MAP
from zapflow.providers.phones import is_group, party, phone_digits

PROVIDER: Final = "evolution"
API_KEY: Final = "api_key"
INSTANCE: Final = "instance"

_MEDIA_TYPES: Final = {
    MessageKind.IMAGE: "image",
    MessageKind.VIDEO: "video",
    MessageKind.DOCUMENT: "document",
}


def _number(to: str) -> str:
    if is_group(to):
        return to.strip()
    try:
        return phone_digits(to)
    except ValueError:
        raise InvalidRecipientError(
            "recipient is not a phone or group", provider=PROVIDER
        ) from None


def _media(media: OutboundMedia) -> tuple[str, JsonDict]:
    if media.link is None:
        raise UnsupportedContentError("Evolution sends media by link only", provider=PROVIDER)
    if media.kind is MessageKind.AUDIO:
        return "sendWhatsAppAudio", {"audio": media.link}
    if media.kind is MessageKind.STICKER:
        return "sendSticker", {"sticker": media.link}
    body: JsonDict = {"mediatype": _MEDIA_TYPES[media.kind]}
    if media.mime_type is not None:
        body["mimetype"] = media.mime_type
    if media.caption is not None:
        body["caption"] = media.caption
    body["media"] = media.link
    if media.filename is not None:
        body["fileName"] = media.filename
    return "sendMedia", body


def build_send_request(msg: OutboundContent, channel: ChannelConfig) -> HttpRequestSpec:
    body: JsonDict = {"number": _number(msg.to)}
    if msg.text is not None:
        endpoint = "sendText"
        body["text"] = msg.text
    elif msg.media is not None:
        endpoint, part = _media(msg.media)
        body |= part
    else:
        raise UnsupportedContentError(
            "Evolution sends text and media only (no templates or interactive)", provider=PROVIDER
        )
    if msg.delay_ms is not None:
        body["delay"] = msg.delay_ms
    if msg.preview_url is not None and msg.text is not None:
        body["linkPreview"] = msg.preview_url
    if msg.reply_to is not None:
        quoted: JsonDict = {"key": {"id": msg.reply_to.message_id}}
        if msg.reply_to.text is not None:
            quoted["message"] = {"conversation": msg.reply_to.text}
        body["quoted"] = quoted
    instance = quote(channel.credential(INSTANCE), safe="")
    headers = {"apikey": channel.credential(API_KEY)}
    return HttpRequestSpec(
        "POST", channel.base_url, f"/message/{endpoint}/{instance}", headers, body
    )


def read_send_success(data: Any) -> SendResult | None:
    key = obj(obj(data).get("key"))
    message_id = ident(ci_get(key, "id"))
    if message_id is None:
        return None
    remote = nonempty(key.get("remoteJid"))
    return SendResult(
        provider_message_id=message_id,
        status=STATUS_MAP.get(
            (string(obj(data).get("status")) or "").upper(), DeliveryStatus.QUEUED
        ),
        recipient=party(remote) if remote else None,
        at=unix_seconds(obj(data).get("messageTimestamp")),
    )


def classify_error(
    status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
) -> ProviderError:
    data = obj(_http.response_json(body))
    raw_messages = obj(data.get("response")).get("message")
    messages = arr(raw_messages) or ([raw_messages] if raw_messages is not None else [])
    if any(isinstance(m, dict) and m.get("exists") is False for m in messages):
        return InvalidRecipientError(
            f"evolution HTTP {status_code}: number not on WhatsApp",
            provider=PROVIDER,
            code="not_on_whatsapp",
            http_status=status_code,
        )
    detail = "; ".join(m for m in messages if isinstance(m, str))[:500] or None
    code = nonempty(data.get("error"))
    return _http.error_for_status(PROVIDER, status_code, code=code, detail=detail, headers=headers)
