"""The webhook channel cache: what the hot path needs about every channel, in memory.

The webhook endpoint answers from this cache alone (no database round trip per request). It is
loaded in full at start-up and kept fresh three ways:

* ``NOTIFY zf_gateway_channels, '<channel id>'`` from a trigger on every committed change
  (:mod:`zapflow.gateway.pgnotify` listens), which reloads that one channel at once;
* a full reload every ``channel_cache_refresh_s`` (default 30 s), in case a notification was lost;
* a full reload whenever the listening connection is re-established.

Each row has a ``version`` bumped on every change, so an older read never replaces a newer one.
A channel whose secrets cannot be opened (wrong ``ZF_GATEWAY_SECRETS_KEY``) is kept with
``secrets=None``: its webhooks answer 503 (providers retry) instead of 404 (they give up).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import asyncpg

from zapflow.contracts.subjects import webhook_received
from zapflow.gateway import store
from zapflow.gateway.crypto import SecretBox, channel_aad
from zapflow.gateway.domain import webhook_secrets
from zapflow.gateway.errors import SecretsError
from zapflow.providers.base import ChannelSecrets, ProviderAdapter
from zapflow.providers.registry import get_adapter

logger = logging.getLogger(__name__)

RELOAD: Final = ""
"""Queued instead of a channel id: reload every channel."""


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    """One channel as the webhook endpoint sees it."""

    tenant_id: str
    channel_id: str
    provider: str
    enabled: bool
    adapter: ProviderAdapter
    secrets: ChannelSecrets | None
    subject: str
    version: int
    account: str | None = None
    """The channel's provider account: the identity its webhooks name (Meta
    ``phone_number_id``, Evolution instance, Z-API instance id, WuzAPI user id or instance)."""
    phone: str | None = None
    """The channel's business number (E.164), compared when it has no account."""


LoadAll = Callable[[], Awaitable[list[WebhookChannel]]]
LoadOne = Callable[[str], Awaitable[WebhookChannel | None]]


class ChannelCache:
    """Channel id -> :class:`WebhookChannel`; reads are a dict lookup. Also indexed by
    (provider, account) for the app-level Meta URL, which routes by ``phone_number_id``."""

    def __init__(self, load_all: LoadAll, load_one: LoadOne) -> None:
        self._load_all = load_all
        self._load_one = load_one
        self._entries: dict[str, WebhookChannel] = {}
        self._accounts: dict[tuple[str, str], list[WebhookChannel]] = {}
        self._tick = 0
        self._refreshed: dict[str, int] = {}
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def get(self, channel_id: str) -> WebhookChannel | None:
        return self._entries.get(channel_id)

    def __len__(self) -> int:
        return len(self._entries)

    def route(self, provider: str, account: str) -> WebhookChannel | None:
        """The one enabled channel of ``provider`` registered with ``account``; None when there
        is none, or when several claim it (ambiguous: nothing is routed, an error is logged)."""
        found = self._accounts.get((provider, account))
        if not found:
            return None
        if len(found) > 1:
            logger.error(
                "several enabled channels claim one provider account",
                extra={"channel_ids": sorted(c.channel_id for c in found), "provider": provider},
            )
            return None
        return found[0]

    def verify_tokens(self, provider: str) -> list[str]:
        """The verify tokens of the enabled channels of ``provider`` (Meta's app-level GET)."""
        return [
            e.secrets.verify_token
            for e in self._entries.values()
            if e.provider == provider and e.enabled and e.secrets and e.secrets.verify_token
        ]

    def _index(self) -> None:
        accounts: dict[tuple[str, str], list[WebhookChannel]] = {}
        for entry in self._entries.values():
            if entry.enabled and entry.account:
                accounts.setdefault((entry.provider, entry.account), []).append(entry)
        self._accounts = accounts

    async def reload(self) -> None:
        """Replace the cache with a fresh snapshot, keeping entries newer than the snapshot."""
        mark = self._tick
        snapshot = {e.channel_id: e for e in await self._load_all()}
        fresh: dict[str, WebhookChannel] = {}
        for channel_id, entry in snapshot.items():
            current = self._entries.get(channel_id)
            fresh[channel_id] = (
                current if current is not None and current.version > entry.version else entry
            )
        for channel_id, tick in self._refreshed.items():
            current = self._entries.get(channel_id)
            if tick > mark and current is not None and channel_id not in fresh:
                fresh[channel_id] = current  # created while the snapshot was being read
        self._entries = fresh
        self._refreshed = {k: t for k, t in self._refreshed.items() if t > mark}
        self._index()

    async def refresh(self, channel_id: str) -> None:
        """Reload one channel (after a change notification)."""
        entry = await self._load_one(channel_id)
        self._tick += 1
        self._refreshed[channel_id] = self._tick
        current = self._entries.get(channel_id)
        if entry is None:
            self._entries.pop(channel_id, None)
        elif current is None or entry.version >= current.version:
            self._entries[channel_id] = entry
        self._index()

    def notify(self, channel_id: str) -> None:
        """Queue a refresh of ``channel_id`` (or of everything, with :data:`RELOAD`)."""
        self.queue.put_nowait(channel_id)

    async def maintain(self, stop: asyncio.Event, every: float) -> None:
        """Apply queued refreshes as they come, and reload everything every ``every`` seconds."""
        loop = asyncio.get_running_loop()
        next_reload = loop.time() + every
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self.queue.get())
                timeout = max(0.0, next_reload - loop.time())
                await asyncio.wait(
                    {getter, stopping}, timeout=timeout, return_when="FIRST_COMPLETED"
                )
                if stop.is_set():
                    getter.cancel()
                    return
                channel_id = getter.result() if getter.done() else None
                getter.cancel()
                try:
                    if channel_id is None or channel_id == RELOAD:
                        await self.reload()
                        next_reload = loop.time() + every
                    else:
                        await self.refresh(channel_id)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    logger.warning("channel cache refresh failed, will retry", exc_info=True)
                    await asyncio.sleep(1.0)
        finally:
            stopping.cancel()


_ADAPTERS: dict[str, ProviderAdapter] = {}


def _adapter(provider: str) -> ProviderAdapter:
    """One adapter per provider (they are stateless)."""
    adapter = _ADAPTERS.get(provider)
    if adapter is None:
        adapter = _ADAPTERS[provider] = get_adapter(provider)
    return adapter


def _entry(row: asyncpg.Record, box: SecretBox) -> WebhookChannel | None:
    tenant_id, channel_id, provider = row["tenant_id"], row["id"], row["provider"]
    try:
        adapter = _adapter(provider)
    except KeyError:
        logger.error("channel has no provider adapter", extra={"channel_id": channel_id})
        return None
    secrets: ChannelSecrets | None
    try:
        sealed = row["secrets_sealed"]
        values = box.open_mapping(sealed, channel_aad(tenant_id, channel_id)) if sealed else {}
        secrets = webhook_secrets(provider, values, row["webhook_token"])
    except SecretsError:
        logger.error("channel secrets do not open", extra={"channel_id": channel_id})
        secrets = None
    return WebhookChannel(
        tenant_id=tenant_id,
        channel_id=channel_id,
        provider=provider,
        enabled=row["enabled"],
        adapter=adapter,
        secrets=secrets,
        subject=webhook_received(tenant_id, channel_id),
        version=row["version"],
        account=row["provider_account"] or None,
        phone=row["phone"] or None,
    )


def pg_cache(pool: asyncpg.Pool[asyncpg.Record], box: SecretBox) -> ChannelCache:
    """A cache loading from the gateway's ``channels`` table through ``pool``."""

    async def load_all() -> list[WebhookChannel]:
        entries = (_entry(row, box) for row in await store.webhook_rows(pool))
        return [e for e in entries if e is not None]

    async def load_one(channel_id: str) -> WebhookChannel | None:
        row = await store.webhook_row(pool, channel_id)
        return None if row is None else _entry(row, box)

    return ChannelCache(load_all, load_one)
