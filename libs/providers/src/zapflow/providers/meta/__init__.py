"""Meta WhatsApp Cloud API (Graph API).

Inbound auth: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>``, verified over
the bytes received (Meta escapes non-ASCII and ``/``, so re-serialised JSON never matches), plus the
GET subscription handshake (:func:`verify_handshake`). Outbound credentials: ``access_token``,
``phone_number_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from zapflow.providers import _http
from zapflow.providers._auth import check_hex_signature
from zapflow.providers.base import (
    ChannelConfig,
    ChannelSecrets,
    HttpRequestSpec,
    OutboundContent,
    ParsedWebhook,
    ProviderAdapter,
    SendResult,
    tokens_equal,
)
from zapflow.providers.errors import ProviderError, UnexpectedResponseError, WebhookAuthError
from zapflow.providers.meta import inbound, outbound
from zapflow.providers.meta.outbound import ACCESS_TOKEN, GRAPH_BASE_URL, PHONE_NUMBER_ID

__all__ = [
    "ACCESS_TOKEN",
    "GRAPH_BASE_URL",
    "PHONE_NUMBER_ID",
    "SIGNATURE_HEADER",
    "MetaAdapter",
    "verify_handshake",
]

SIGNATURE_HEADER = "x-hub-signature-256"


def verify_handshake(query: Mapping[str, str], verify_token: str | None) -> str:
    """Answer Meta's ``GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…``.

    Returns the challenge to send back as the plain-text 200 body; raises
    :class:`WebhookAuthError` (answer 403) on a wrong mode or token, or a missing challenge.
    """
    if verify_token is None:
        raise WebhookAuthError("no verify token configured for channel", provider="meta")
    if query.get("hub.mode") != "subscribe":
        raise WebhookAuthError("handshake mode is not subscribe", provider="meta")
    if not tokens_equal(query.get("hub.verify_token"), verify_token):
        raise WebhookAuthError("verify token mismatch", provider="meta")
    challenge = query.get("hub.challenge")
    if not challenge:
        raise WebhookAuthError("handshake without challenge", provider="meta")
    return challenge


class MetaAdapter(ProviderAdapter):
    name: ClassVar[str] = "meta"

    def _check_native_auth(
        self, headers: Mapping[str, str], body: bytes, secrets: ChannelSecrets
    ) -> bool:
        if secrets.app_secret is None:
            return False
        header = headers.get(SIGNATURE_HEADER, "")
        if not header.startswith("sha256="):
            raise WebhookAuthError("signature header missing", provider=self.name)
        check_hex_signature(
            header.removeprefix("sha256="), secrets.app_secret, body, provider=self.name
        )
        return True

    def parse_webhook(
        self, body: bytes, content_type: str, *, channel_phone: str | None = None
    ) -> ParsedWebhook:
        return inbound.parse(body, channel_phone=channel_phone, clock=self._clock)

    def build_send_request(self, msg: OutboundContent, channel: ChannelConfig) -> HttpRequestSpec:
        return outbound.build_send_request(msg, channel)

    def build_mark_read_request(self, message_id: str, channel: ChannelConfig) -> HttpRequestSpec:
        return outbound.build_mark_read_request(message_id, channel)

    def parse_mark_read_response(
        self, status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Raise the classified error unless Meta answered ``{"success": true}``."""
        if not 200 <= status_code < 300:
            raise self.classify_error(status_code, body, headers=headers)
        if not outbound.read_mark_read_success(_http.response_json(body)):
            raise UnexpectedResponseError(
                "meta mark-read answered without success", provider=self.name
            )

    def classify_error(
        self, status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        return outbound.classify_error(status_code, body, headers=headers)

    def _read_send_success(self, data: Any) -> SendResult | None:
        return outbound.read_send_success(data)
