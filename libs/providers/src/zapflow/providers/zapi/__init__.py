"""Z-API (z-api.io).

Inbound auth: Z-API documents no signature; the ``Client-Token`` header is checked when
``client_token`` is configured (accounts that forward it), and the per-channel path token (a
secret ``?token=`` in the webhook URL) is the recommended protection. Outbound credentials:
``instance_id``, ``instance_token``, optional ``client_token``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

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
from zapflow.providers.errors import ProviderError, WebhookAuthError
from zapflow.providers.zapi import inbound, outbound
from zapflow.providers.zapi.outbound import CLIENT_TOKEN, INSTANCE_ID, INSTANCE_TOKEN

__all__ = ["CLIENT_TOKEN", "INSTANCE_ID", "INSTANCE_TOKEN", "ZapiAdapter"]


class ZapiAdapter(ProviderAdapter):
    name: ClassVar[str] = "zapi"

    def _check_native_auth(
        self, headers: Mapping[str, str], body: bytes, secrets: ChannelSecrets
    ) -> bool:
        if secrets.client_token is None:
            return False
        if not tokens_equal(headers.get("client-token"), secrets.client_token):
            raise WebhookAuthError("Client-Token missing or wrong", provider=self.name)
        return True

    def parse_webhook(
        self, body: bytes, content_type: str, *, channel_phone: str | None = None
    ) -> ParsedWebhook:
        return inbound.parse(body, channel_phone=channel_phone, clock=self._clock)

    def build_send_request(self, msg: OutboundContent, channel: ChannelConfig) -> HttpRequestSpec:
        return outbound.build_send_request(msg, channel)

    def classify_error(
        self, status_code: int, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        return outbound.classify_error(status_code, body, headers=headers)

    def _read_send_success(self, data: Any) -> SendResult | None:
        return outbound.read_send_success(data)
