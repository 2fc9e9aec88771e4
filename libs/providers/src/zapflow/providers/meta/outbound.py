"""Meta Cloud API outbound: ``POST /{phone-number-id}/messages`` and its answers.

Credentials: ``access_token`` (``Authorization: Bearer``) and ``phone_number_id``.
Base URL: ``https://graph.facebook.com/v21.0`` (paths are identical across Graph versions).
Errors are classified by the body's ``error.code``, not by HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from zapflow.contracts.model import DeliveryStatus
from zapflow.providers import _http
from zapflow.providers._wire import JsonDict, ident, integer, nonempty, obj, objs
from zapflow.providers.base import ChannelConfig, HttpRequestSpec, SendResult
from zapflow.providers.content import InteractiveContent, OutboundContent, OutboundMedia
from zapflow.providers.errors import (
    AuthenticationError,
    InvalidRecipientError,
    InvalidRequestError,
    OutsideServiceWindowError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    TemplateError,
    UnsupportedContentError,
)
from zapflow.providers.phones import normalize_phone, party, phone_digits

PROVIDER: Final = "meta"
GRAPH_BASE_URL: Final = "https://graph.facebook.com/v21.0"
ACCESS_TOKEN: Final = "access_token"
PHONE_NUMBER_ID: Final = "phone_number_id"
META_DOMAINS: Final = ("facebook.com", "fbsbx.com", "fbcdn.net")
"""Meta's own domains: the Graph API and its media URLs (``lookaside.fbsbx.com``). A channel's
access token goes to these hosts (and to the channel's own base URL), nowhere else."""


def is_meta_host(host: str) -> bool:
    """True for a host in one of :data:`META_DOMAINS` (the domain itself or a subdomain)."""
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in META_DOMAINS)


RATE_LIMIT_CODES: Final = frozenset({4, 613, 80007, 130429, 131056})
UNAVAILABLE_CODES: Final = frozenset({1, 2, 131000, 131016, 133004})
AUTH_CODES: Final = frozenset({0, 3, 10, 190}) | frozenset(range(200, 300))
RECIPIENT_CODES: Final = frozenset({131021, 131026, 131030})
WINDOW_CODES: Final = frozenset({131047})
MAX_OPAQUE: Final = 512
"""Longest ``biz_opaque_callback_data`` Meta accepts."""
PAIR_RATE_RETRY_AFTER: Final = 6.0
"""Seconds to wait after 131056 when no Retry-After came (about 1 message per 6 s per user)."""

_CAPTIONED: Final = frozenset({"image", "video", "document"})


def _headers(channel: ChannelConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {channel.credential(ACCESS_TOKEN)}"}


def _path(channel: ChannelConfig) -> str:
    return f"/{channel.credential(PHONE_NUMBER_ID)}/messages"


def _recipient(to: str) -> str:
    try:
        return phone_digits(to)
    except ValueError:
        raise InvalidRecipientError("recipient is not a phone number", provider=PROVIDER) from None


def _media(media: OutboundMedia) -> JsonDict:
    kind = media.kind.value
    part: JsonDict = {"id": media.media_id} if media.media_id else {"link": media.link}
    if media.caption is not None and kind in _CAPTIONED:
        part["caption"] = media.caption
    if media.filename is not None and kind == "document":
        part["filename"] = media.filename
    return {"type": kind, kind: part}


def _interactive(content: InteractiveContent) -> JsonDict:
    part: JsonDict = {"type": content.kind}
    if content.header is not None:
        part["header"] = {"type": "text", "text": content.header}
    part["body"] = {"text": content.body}
    if content.footer is not None:
        part["footer"] = {"text": content.footer}
    if content.kind == "button":
        buttons = [
            {"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in content.buttons
        ]
        part["action"] = {"buttons": buttons}
    else:
        sections = [
            {
                "title": section.title,
                "rows": [
                    {"id": r.id, "title": r.title}
                    | ({"description": r.description} if r.description is not None else {})
                    for r in section.rows
                ],
            }
            for section in content.sections
        ]
        part["action"] = {"button": content.button, "sections": sections}
    return {"type": "interactive", "interactive": part}


def _payload(msg: OutboundContent) -> JsonDict:
    if msg.text is not None:
        text: JsonDict = {} if msg.preview_url is None else {"preview_url": msg.preview_url}
        return {"type": "text", "text": text | {"body": msg.text}}
    if msg.media is not None:
        return _media(msg.media)
    if msg.template is not None:
        template: JsonDict = {
            "name": msg.template.name,
            "language": {"code": msg.template.language},
        }
        if msg.template.components:
            template["components"] = [dict(c) for c in msg.template.components]
        return {"type": "template", "template": template}
    if msg.interactive is None:
        raise UnsupportedContentError("empty content", provider=PROVIDER)
    return _interactive(msg.interactive)


def build_send_request(msg: OutboundContent, channel: ChannelConfig) -> HttpRequestSpec:
    body: JsonDict = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": _recipient(msg.to),
    }
    if msg.reply_to is not None:
        body["context"] = {"message_id": msg.reply_to.message_id}
    body |= _payload(msg)
    if msg.client_message_id is not None:
        # echoed in every status webhook of the message: lets the sender learn that a send it
        # lost track of was accepted, without Meta's id
        if len(msg.client_message_id) > MAX_OPAQUE:
            raise InvalidRequestError("client message id longer than 512", provider=PROVIDER)
        body["biz_opaque_callback_data"] = msg.client_message_id
    return HttpRequestSpec("POST", channel.base_url, _path(channel), _headers(channel), body)


def build_mark_read_request(message_id: str, channel: ChannelConfig) -> HttpRequestSpec:
    """Mark an inbound message (and the ones before it) as read; answer ``{"success": true}``."""
    body: JsonDict = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
    return HttpRequestSpec("POST", channel.base_url, _path(channel), _headers(channel), body)


def read_mark_read_success(data: Any) -> bool:
    return obj(data).get("success") is True


def read_send_success(data: Any) -> SendResult | None:
    message = next(iter(objs(obj(data).get("messages"))), {})
    message_id = ident(message.get("id"))
    if message_id is None:
        return None
    contact = next(iter(objs(obj(data).get("contacts"))), {})
    wa_id = ident(contact.get("wa_id"))
    return SendResult(
        provider_message_id=message_id,
        status=DeliveryStatus.QUEUED,  # accepted / held_for_quality_assessment: not yet sent
        recipient=party(wa_id) if wa_id and normalize_phone(wa_id) else None,
    )


def classify_error(
    status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
) -> ProviderError:
    error = obj(obj(_http.response_json(body)).get("error"))
    code = integer(error.get("code"))
    detail = nonempty(obj(error.get("error_data")).get("details")) or nonempty(error.get("message"))
    if code is None:
        return _http.error_for_status(PROVIDER, status_code, detail=detail, headers=headers)
    kwargs: dict[str, Any] = {
        "provider": PROVIDER,
        "code": str(code),
        "http_status": status_code,
        "detail": detail,
    }
    label = f"meta error {code} (HTTP {status_code})"
    if code in RATE_LIMIT_CODES:
        wait = _http.retry_after(headers)
        if wait is None and code == 131056:
            wait = PAIR_RATE_RETRY_AFTER
        return RateLimitedError(f"{label}: rate limited", retry_after=wait, **kwargs)
    if code in UNAVAILABLE_CODES or (status_code >= 500 and code not in AUTH_CODES):
        return ProviderUnavailableError(f"{label}: temporarily unavailable", **kwargs)
    if code in AUTH_CODES:
        return AuthenticationError(f"{label}: access token invalid or expired", **kwargs)
    if code in WINDOW_CODES:
        return OutsideServiceWindowError(f"{label}: outside the 24 h window", **kwargs)
    if code in RECIPIENT_CODES:
        return InvalidRecipientError(f"{label}: recipient cannot receive", **kwargs)
    if 132000 <= code <= 132999:
        return TemplateError(f"{label}: template rejected", **kwargs)
    return InvalidRequestError(f"{label}: request rejected", **kwargs)
