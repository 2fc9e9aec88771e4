"""The webhook channel cache: a dict kept fresh by notifications and periodic reloads."""

import asyncio

from zapflow.gateway.cache import RELOAD, ChannelCache, WebhookChannel
from zapflow.providers.base import ChannelSecrets
from zapflow.providers.registry import get_adapter

META = get_adapter("meta")


def entry(channel_id: str, version: int = 1, *, enabled: bool = True) -> WebhookChannel:
    return WebhookChannel(
        tenant_id="acme",
        channel_id=channel_id,
        provider="meta",
        enabled=enabled,
        adapter=META,
        secrets=ChannelSecrets(app_secret="s"),
        subject=f"zf.inbound.webhook_received.v1.acme.{channel_id}",
        version=version,
    )


class FakeTable:
    """What the loaders read: the channels table, with hooks to interleave changes."""

    def __init__(self, *entries: WebhookChannel) -> None:
        self.rows = {e.channel_id: e for e in entries}
        self.loads = 0
        self.during_load_all: list[object] = []

    async def load_all(self) -> list[WebhookChannel]:
        self.loads += 1
        snapshot = list(self.rows.values())
        for hook in self.during_load_all:
            await hook()  # type: ignore[operator]
        return snapshot

    async def load_one(self, channel_id: str) -> WebhookChannel | None:
        return self.rows.get(channel_id)


async def test_reload_fills_the_cache_and_get_is_a_lookup() -> None:
    table = FakeTable(entry("a"), entry("b"))
    cache = ChannelCache(table.load_all, table.load_one)
    assert cache.get("a") is None
    await cache.reload()
    assert len(cache) == 2
    assert cache.get("a") == entry("a")
    assert cache.get("missing") is None


async def test_refresh_picks_up_one_changed_channel() -> None:
    table = FakeTable(entry("a"))
    cache = ChannelCache(table.load_all, table.load_one)
    await cache.reload()
    table.rows["a"] = entry("a", 2, enabled=False)
    table.rows["new"] = entry("new")
    await cache.refresh("a")
    await cache.refresh("new")
    cached = cache.get("a")
    assert cached is not None
    assert not cached.enabled
    assert cache.get("new") is not None


async def test_an_older_read_never_replaces_a_newer_entry() -> None:
    table = FakeTable(entry("a", 1))
    cache = ChannelCache(table.load_all, table.load_one)
    newer = entry("a", 3, enabled=False)

    async def change_during_snapshot() -> None:
        table.rows["a"] = newer
        await cache.refresh("a")  # the notification is handled while the snapshot is read

    table.during_load_all.append(change_during_snapshot)
    await cache.reload()  # its snapshot still holds version 1
    assert cache.get("a") == newer


async def test_a_channel_created_while_a_snapshot_was_read_is_kept() -> None:
    table = FakeTable(entry("a"))
    cache = ChannelCache(table.load_all, table.load_one)

    async def create_during_snapshot() -> None:
        table.rows["b"] = entry("b")
        await cache.refresh("b")

    table.during_load_all.append(create_during_snapshot)
    await cache.reload()
    assert cache.get("b") is not None
    table.during_load_all.clear()
    await cache.reload()  # and the next snapshot has it anyway
    assert cache.get("b") is not None


async def test_a_channel_gone_from_the_table_leaves_the_cache() -> None:
    table = FakeTable(entry("a"), entry("b"))
    cache = ChannelCache(table.load_all, table.load_one)
    await cache.reload()
    del table.rows["a"]
    await cache.refresh("a")
    assert cache.get("a") is None
    del table.rows["b"]
    await cache.reload()
    assert len(cache) == 0


async def test_maintain_applies_notifications_and_reloads_periodically() -> None:
    table = FakeTable(entry("a"))
    cache = ChannelCache(table.load_all, table.load_one)
    stop = asyncio.Event()
    task = asyncio.create_task(cache.maintain(stop, every=0.05))
    try:
        table.rows["b"] = entry("b")
        cache.notify("b")
        for _ in range(100):
            if cache.get("b") is not None and table.loads >= 2:
                break
            await asyncio.sleep(0.01)
        assert cache.get("b") is not None
        assert table.loads >= 2  # periodic reloads happen
        loads = table.loads
        cache.notify(RELOAD)
        for _ in range(100):
            if table.loads > loads:
                break
            await asyncio.sleep(0.005)
        assert table.loads > loads
    finally:
        stop.set()
        await asyncio.wait_for(task, 1.0)
