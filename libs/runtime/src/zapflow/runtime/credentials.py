"""A channel's provider credentials, asked from the gateway and cached: the one client every
service that calls a provider on a channel's behalf uses (the sender to send, ingest to download
media).

``CHANNEL_CREDENTIALS`` is a request-reply query (``zapflow.runtime.rpc``) only those services may
ask. Answers are kept ``ttl_s`` seconds per channel; concurrent lookups of one channel share one
request; :meth:`ChannelCredentials.invalidate` forgets a channel (after the provider refused its
credentials, or when its settings changed). No answer in time, or the gateway unable to answer, is
:class:`~zapflow.runtime.rpc.QueryUnavailable` (a ``TransientError``): the caller retries later.
Secrets stay in this process's memory only and are never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Final

from nats.aio.client import Client as NATS

from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)
from zapflow.runtime import rpc

DEFAULT_TTL_S: Final = 300.0

Key = tuple[str, str]


class ChannelCredentials:
    """Cached, single-flight lookups of ``CHANNEL_CREDENTIALS``, asked as ``caller``."""

    def __init__(
        self,
        nc: NATS,
        *,
        caller: str,
        ttl_s: float = DEFAULT_TTL_S,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nc = nc
        self._caller = caller
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

    async def __call__(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        return await self.get(tenant_id, channel_id)

    def invalidate(self, tenant_id: str, channel_id: str) -> None:
        self._cache.pop((tenant_id, channel_id), None)

    def _answered(self, key: Key, done: asyncio.Future[ChannelCredentialsReply]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled() and done.exception() is None:
            self._cache[key] = (self._clock() + self._ttl, done.result())

    async def _ask(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        request = ChannelCredentialsRequest(tenant_id=tenant_id, channel_id=channel_id)
        try:
            return await rpc.ask(
                self._nc, CHANNEL_CREDENTIALS, request, caller=self._caller, timeout_s=self._timeout
            )
        except rpc.QueryFailed as exc:  # a contract mismatch: nothing a retry fixes soon
            raise rpc.QueryUnavailable(CHANNEL_CREDENTIALS, exc.code) from exc
