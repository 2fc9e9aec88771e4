"""Z-API outbound: ``POST /instances/{id}/token/{token}/send-*`` and its answers.

Credentials: ``instance_id``, ``instance_token`` (both in the path) and, when the account enables
it, ``client_token`` (header ``Client-Token``). Text goes to ``send-text`` (reply with
``messageId``); media by link to ``send-image``, ``send-video``, ``send-audio``, ``send-sticker``
and ``send-document/{extension}``. Templates and interactive messages raise
:class:`UnsupportedContentError`. A send answers 200 ``{zaapId, messageId, id}``: queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, Final
from urllib.parse import quote, urlsplit

from zapflow.contracts.model import DeliveryStatus, MessageKind
from zapflow.providers import _http
from zapflow.providers._wire import JsonDict, ident, nonempty, obj
from zapflow.providers.base import ChannelConfig, HttpRequestSpec, SendResult
from zapflow.providers.content import OutboundContent, OutboundMedia
from zapflow.providers.errors import (
    AuthenticationError,
    InvalidRecipientError,
    ProviderError,
    ProviderUnavailableError,
    UnsupportedContentError,
)
from zapflow.providers.phones import ZAPI_GROUP_SUFFIX, is_group, phone_digits, split_jid

PROVIDER: Final = "zapi"
INSTANCE_ID: Final = "instance_id"
INSTANCE_TOKEN: Final = "instance_token"
CLIENT_TOKEN: Final = "client_token"
MIN_DELAY_S: Final = 1
MAX_DELAY_S: Final = 15

_MEDIA_FIELDS: Final = {
    MessageKind.IMAGE: "image",
    MessageKind.VIDEO: "video",
    MessageKind.AUDIO: "audio",
    MessageKind.STICKER: "sticker",
}
_CAPTIONED: Final = frozenset({MessageKind.IMAGE, MessageKind.VIDEO, MessageKind.DOCUMENT})


def _phone(to: str) -> str:
    if is_group(to):
        user, server = split_jid(to)
        return user if server is None else f"{user}{ZAPI_GROUP_SUFFIX}"
    try:
        return phone_digits(to)
    except ValueError:
        raise InvalidRecipientError(
            "recipient is not a phone or group", provider=PROVIDER
        ) from None


def _extension(media: OutboundMedia) -> str:
    for name in (media.filename, urlsplit(media.link or "").path):
        suffix = PurePosixPath(name or "").suffix.lstrip(".").lower()
        if suffix.isalnum():
            return suffix
    raise UnsupportedContentError("document needs a filename extension", provider=PROVIDER)


def _media(media: OutboundMedia) -> tuple[str, JsonDict]:
    if media.link is None:
        raise UnsupportedContentError("Z-API sends media by link only", provider=PROVIDER)
    if media.kind is MessageKind.DOCUMENT:
        endpoint, body = f"send-document/{_extension(media)}", {"document": media.link}
        if media.filename is not None:
            body["fileName"] = media.filename
    else:
        field = _MEDIA_FIELDS[media.kind]
        endpoint, body = f"send-{field}", {field: media.link}
    if media.caption is not None and media.kind in _CAPTIONED:
        body["caption"] = media.caption
    return endpoint, body


def build_send_request(msg: OutboundContent, channel: ChannelConfig) -> HttpRequestSpec:
    body: JsonDict = {"phone": _phone(msg.to)}
    if msg.text is not None:
        endpoint = "send-text"
        body["message"] = msg.text
    elif msg.media is not None:
        endpoint, part = _media(msg.media)
        body |= part
    else:
        raise UnsupportedContentError("Z-API adapter sends text and media only", provider=PROVIDER)
    if msg.delay_ms is not None:
        body["delayMessage"] = min(MAX_DELAY_S, max(MIN_DELAY_S, round(msg.delay_ms / 1000)))
    if msg.reply_to is not None:
        body["messageId"] = msg.reply_to.message_id
    instance = quote(channel.credential(INSTANCE_ID), safe="")
    token = quote(channel.credential(INSTANCE_TOKEN), safe="")
    headers: dict[str, str] = {}
    if channel.credentials.get(CLIENT_TOKEN):
        headers["Client-Token"] = channel.credentials[CLIENT_TOKEN]
    path = f"/instances/{instance}/token/{token}/{endpoint}"
    return HttpRequestSpec("POST", channel.base_url, path, headers, body)


def read_send_success(data: Any) -> SendResult | None:
    message_id = ident(obj(data).get("messageId")) or ident(obj(data).get("id"))
    if message_id is None:
        return None
    return SendResult(provider_message_id=message_id, status=DeliveryStatus.QUEUED)


def classify_error(
    status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
) -> ProviderError:
    error = nonempty(obj(_http.response_json(body)).get("error"))
    text = (error or "").lower()
    base: dict[str, Any] = {"provider": PROVIDER, "http_status": status_code, "detail": error}
    if text == "null not allowed" or "client-token" in text:
        return AuthenticationError(
            "zapi: Client-Token missing or wrong", code="client_token", **base
        )
    if "[ip request] not allowed" in text:
        return AuthenticationError("zapi: caller IP not allowed", code="ip_not_allowed", **base)
    if "not connected" in text or "disconnected" in text:
        return ProviderUnavailableError(
            "zapi: instance not connected", code="not_connected", **base
        )
    return _http.error_for_status(PROVIDER, status_code, detail=error, headers=headers)
