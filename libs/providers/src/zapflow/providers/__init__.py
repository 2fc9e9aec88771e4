"""Provider adapters: Meta Cloud API, Evolution API v2, Z-API, WuzAPI.

Parse and verify webhooks into the canonical model, build and classify send calls::

    from zapflow.providers import get_adapter

    adapter = get_adapter("meta")
    adapter.verify_webhook(headers, body, query, secrets)
    parsed = adapter.parse_webhook(body, content_type)
"""

from zapflow.providers.base import (
    ChannelConfig,
    ChannelSecrets,
    HttpRequestSpec,
    OutboundContent,
    ParsedWebhook,
    ProviderAdapter,
    SendResult,
)
from zapflow.providers.registry import PROVIDERS, get_adapter

__all__ = [
    "PROVIDERS",
    "ChannelConfig",
    "ChannelSecrets",
    "HttpRequestSpec",
    "OutboundContent",
    "ParsedWebhook",
    "ProviderAdapter",
    "SendResult",
    "get_adapter",
]
