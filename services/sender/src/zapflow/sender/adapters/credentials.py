"""Provider credentials asked from the gateway (``CHANNEL_CREDENTIALS`` request-reply), cached.

Answers are kept ``ttl_s`` seconds per channel; concurrent lookups of one channel share one
request. No answer (no responders, timeout) is a ``TransientError``: the send waits and retries.
Secrets stay in memory only and are never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import ValidationError

from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)
from zapflow.sender.errors import CredentialsUnavailableError

Key = tuple[str, str]


class GatewayCredentials:
    """The ``CredentialSource`` port."""

    def __init__(
        self,
        nc: NATS,
        *,
        ttl_s: float = 300.0,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nc = nc
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._clock = clock
        self._cache: dict[Key, tuple[float, ChannelCredentialsReply]] = {}
        self._pending: dict[Key, asyncio.Future[ChannelCredentialsReply]] = {}

    async def get(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        key = (tenant_id, channel_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        asking = self._pending.get(key)
        if asking is None:  # one request per channel, whoever waits for it (or gives up)
            asking = asyncio.ensure_future(self._ask(tenant_id, channel_id))
            self._pending[key] = asking
            asking.add_done_callback(lambda done: self._answered(key, done))
        return await asyncio.shield(asking)

    def _answered(self, key: Key, done: asyncio.Future[ChannelCredentialsReply]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._cache[key] = (self._clock() + self._ttl, done.result())

    def invalidate(self, tenant_id: str, channel_id: str) -> None:
        self._cache.pop((tenant_id, channel_id), None)

    async def _ask(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        request = ChannelCredentialsRequest(tenant_id=tenant_id, channel_id=channel_id)
        try:
            msg = await self._nc.request(
                CHANNEL_CREDENTIALS, request.model_dump_json().encode(), timeout=self._timeout
            )
            return ChannelCredentialsReply.model_validate_json(msg.data)
        except (NoRespondersError, NatsTimeoutError, TimeoutError, ValidationError) as exc:
            raise CredentialsUnavailableError(channel_id) from exc
