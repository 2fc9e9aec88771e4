"""WuzAPI (asternic/wuzapi, whatsmeow).

Inbound auth: ``x-hmac-signature: <hex HMAC-SHA256(hmac_key, raw body)>`` (no prefix) in both
body formats; in form mode the signed bytes are the url-encoded form exactly as received. Without a
key WuzAPI signs nothing: use the per-channel path token. Outbound credential: ``token``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from zapflow.providers._auth import check_hex_signature
from zapflow.providers.base import (
    ChannelConfig,
    ChannelSecrets,
    HttpRequestSpec,
    OutboundContent,
    ParsedWebhook,
    ProviderAdapter,
    SendResult,
)
from zapflow.providers.errors import ProviderError
from zapflow.providers.wuzapi import inbound, outbound
from zapflow.providers.wuzapi.inbound import FORM_CONTENT_TYPE, FORM_JSON_FIELD
from zapflow.providers.wuzapi.outbound import TOKEN

__all__ = ["FORM_CONTENT_TYPE", "FORM_JSON_FIELD", "SIGNATURE_HEADER", "TOKEN", "WuzapiAdapter"]

SIGNATURE_HEADER = "x-hmac-signature"


class WuzapiAdapter(ProviderAdapter):
    name: ClassVar[str] = "wuzapi"

    def _check_native_auth(
        self, headers: Mapping[str, str], body: bytes, secrets: ChannelSecrets
    ) -> bool:
        if secrets.hmac_key is None:
            return False
        check_hex_signature(
            headers.get(SIGNATURE_HEADER), secrets.hmac_key, body, provider=self.name
        )
        return True

    def parse_webhook(
        self, body: bytes, content_type: str, *, channel_phone: str | None = None
    ) -> ParsedWebhook:
        # WuzAPI payloads never name the business number, so channel_phone has nothing to check.
        return inbound.parse(body, content_type, clock=self._clock)

    def build_send_request(self, msg: OutboundContent, channel: ChannelConfig) -> HttpRequestSpec:
        return outbound.build_send_request(msg, channel)

    def classify_error(
        self, status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        return outbound.classify_error(status_code, body, headers=headers)

    def _read_send_success(self, data: Any) -> SendResult | None:
        return outbound.read_send_success(data)
