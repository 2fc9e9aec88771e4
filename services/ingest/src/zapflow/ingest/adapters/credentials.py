"""Channel credentials from the gateway (NATS request-reply), cached briefly in memory.

They are kept only in this process's memory, for ``ttl_s``, and never logged.
"""

from __future__ import annotations

import time
from typing import Final

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from zapflow.contracts.errors import TransientError
from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)

DEFAULT_TTL_S: Final = 60.0


class NatsCredentials:
    """:class:`zapflow.ingest.ports.CredentialsLookup` answered by the gateway."""

    def __init__(self, nc: NATS, *, timeout_s: float, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._nc = nc
        self._timeout = timeout_s
        self._ttl = ttl_s
        self._cache: dict[tuple[str, str], tuple[float, ChannelCredentialsReply]] = {}

    async def __call__(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        key = (tenant_id, channel_id)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        request = ChannelCredentialsRequest(tenant_id=tenant_id, channel_id=channel_id)
        try:
            msg = await self._nc.request(
                CHANNEL_CREDENTIALS, request.model_dump_json().encode(), timeout=self._timeout
            )
        except (NatsTimeoutError, NoRespondersError) as exc:
            raise TransientError("gateway did not answer the credentials query") from exc
        reply = ChannelCredentialsReply.model_validate_json(msg.data)
        self._cache[key] = (time.monotonic(), reply)
        return reply
