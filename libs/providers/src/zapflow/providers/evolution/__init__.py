"""Evolution API v2 (Baileys).

Inbound auth (Evolution signs nothing): the ``apikey`` header (set as a custom webhook header, or
the envelope's ``apikey`` field when Evolution exposes the instance token), or
``Authorization: Bearer <HS256 JWT>`` when the webhook has a ``jwt_key`` (signature and ``exp``
verified), or the per-channel path token. Outbound credentials: ``api_key``, ``instance``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from zapflow.providers._auth import bearer_token, check_hs256_jwt
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
from zapflow.providers.evolution import inbound, outbound
from zapflow.providers.evolution.outbound import API_KEY, INSTANCE

__all__ = ["API_KEY", "INSTANCE", "EvolutionAdapter"]


def _envelope_apikey(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = data.get("apikey") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


class EvolutionAdapter(ProviderAdapter):
    name: ClassVar[str] = "evolution"

    def _check_native_auth(
        self, headers: Mapping[str, str], body: bytes, secrets: ChannelSecrets
    ) -> bool:
        if secrets.api_key is None and secrets.jwt_key is None:
            return False
        if secrets.api_key is not None:
            supplied = headers.get("apikey") or _envelope_apikey(body)
            if tokens_equal(supplied, secrets.api_key):
                return True
        if secrets.jwt_key is not None:
            token = bearer_token(headers.get("authorization"))
            if token is not None:
                check_hs256_jwt(token, secrets.jwt_key, self._clock(), provider=self.name)
                return True
        raise WebhookAuthError("apikey or bearer token missing or wrong", provider=self.name)

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
