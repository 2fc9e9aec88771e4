"""WuzAPI outbound: ``POST /chat/send/*`` and its answers.

Credential: ``token`` (header ``Token``). Text goes to ``/chat/send/text`` ``{Phone, Body, Id?,
ContextInfo?{StanzaId, Participant}}``; media by link (or ``data:`` URL, which older WuzAPI
versions require) to ``/chat/send/{image,video,audio,document,sticker}``. ``Id`` is our
``client_message_id``: WhatsApp then uses it as the message id, which makes retries idempotent.
The call is synchronous: 200 ``{"data": {"Details": "Sent", "Id", "Timestamp"}}`` means sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from zapflow.contracts.model import DeliveryStatus, MessageKind
from zapflow.providers import _http
from zapflow.providers._wire import JsonDict, ci_get, ident, nonempty, obj, rfc3339, unix_seconds
from zapflow.providers.base import ChannelConfig, HttpRequestSpec, SendResult
from zapflow.providers.content import OutboundContent, OutboundMedia
from zapflow.providers.errors import (
    InvalidRecipientError,
    ProviderError,
    ProviderUnavailableError,
    UnsupportedContentError,
)
from zapflow.providers.phones import is_group, phone_digits, phone_jid

PROVIDER: Final = "wuzapi"
TOKEN: Final = "token"

_MEDIA_FIELDS: Final = {
    MessageKind.IMAGE: "Image",
    MessageKind.VIDEO: "Video",
    MessageKind.AUDIO: "Audio",
    MessageKind.DOCUMENT: "Document",
    MessageKind.STICKER: "Sticker",
}


def _phone(to: str) -> str:
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
        raise UnsupportedContentError("WuzAPI sends media by link or data URL", provider=PROVIDER)
    field = _MEDIA_FIELDS[media.kind]
    body: JsonDict = {field: media.link}
    if media.caption is not None and media.kind in (MessageKind.IMAGE, MessageKind.VIDEO):
        body["Caption"] = media.caption
    if media.kind is MessageKind.DOCUMENT:
        body["FileName"] = media.filename or "document"
    return f"/chat/send/{field.lower()}", body


def build_send_request(msg: OutboundContent, channel: ChannelConfig) -> HttpRequestSpec:
    body: JsonDict = {"Phone": _phone(msg.to)}
    if msg.text is not None:
        path = "/chat/send/text"
        body["Body"] = msg.text
    elif msg.media is not None:
        path, part = _media(msg.media)
        body |= part
    else:
        raise UnsupportedContentError("WuzAPI adapter sends text and media only", provider=PROVIDER)
    if msg.client_message_id is not None:
        body["Id"] = msg.client_message_id
    if msg.reply_to is not None:
        try:
            participant = phone_jid(msg.reply_to.sender or msg.to)
        except ValueError:
            raise InvalidRecipientError("quoted sender is no phone", provider=PROVIDER) from None
        body["ContextInfo"] = {"StanzaId": msg.reply_to.message_id, "Participant": participant}
    headers = {"Token": channel.credential(TOKEN)}
    return HttpRequestSpec("POST", channel.base_url, path, headers, body)


def read_send_success(data: Any) -> SendResult | None:
    if obj(data).get("success") is False:
        return None
    inner = obj(obj(data).get("data"))
    message_id = ident(ci_get(inner, "Id"))
    if message_id is None:
        return None
    stamp = ci_get(inner, "Timestamp")
    return SendResult(
        provider_message_id=message_id,
        status=DeliveryStatus.SENT,
        at=unix_seconds(stamp) or rfc3339(stamp),
    )


def classify_error(
    status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
) -> ProviderError:
    error = nonempty(obj(_http.response_json(body)).get("error"))
    text = (error or "").lower()
    if "not connected" in text or "no session" in text:
        return ProviderUnavailableError(
            f"wuzapi HTTP {status_code}: session not connected",
            provider=PROVIDER,
            code="not_connected",
            http_status=status_code,
            detail=error,
        )
    return _http.error_for_status(PROVIDER, status_code, detail=error, headers=headers)
