"""``zapflow status``: services' health, streams with message counts, consumers with backlog,
and the sends the sender parked out of memory per channel (channels over their budget)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg
import httpx
from nats.js.errors import NotFoundError

from zapflow.cli import topology
from zapflow.cli.topology import SERVICES


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    url: str
    ready: bool
    detail: str


@dataclass(frozen=True)
class StreamRow:
    name: str
    messages: int
    bytes: int
    consumers: int


@dataclass(frozen=True)
class ConsumerRow:
    stream: str
    name: str
    pending: int
    ack_pending: int
    redelivered: int
    durable: bool = True
    """False for ephemeral consumers: KV watchers, ordered readers of a replica."""


async def service_health() -> list[ServiceHealth]:
    async with httpx.AsyncClient(timeout=2.0) as client:

        async def one(name: str, url: str) -> ServiceHealth:
            try:
                resp = await client.get(url + "/readyz")
            except httpx.HTTPError as exc:
                return ServiceHealth(name, url, False, f"unreachable ({type(exc).__name__})")
            checks = resp.json().get("checks", {}) if resp.status_code in (200, 503) else {}
            failing = [k for k, ok in checks.items() if not ok]
            detail = "ready" if resp.status_code == 200 else "not ready: " + ", ".join(failing)
            return ServiceHealth(name, url, resp.status_code == 200, detail)

        return list(await asyncio.gather(*(one(s.name, s.base_url()) for s in SERVICES)))


async def jetstream_state(nats_url: str) -> tuple[list[StreamRow], list[ConsumerRow]]:
    nc = await topology.connect_nats(nats_url)
    try:
        js = nc.jetstream()
        streams: list[StreamRow] = []
        consumers: list[ConsumerRow] = []
        for info in await js.streams_info():
            name = info.config.name or "?"
            st = info.state
            streams.append(StreamRow(name, st.messages, st.bytes, st.consumer_count))
            with contextlib.suppress(NotFoundError):
                for c in await js.consumers_info(name):
                    consumers.append(
                        ConsumerRow(
                            name,
                            c.name,
                            c.num_pending or 0,
                            c.num_ack_pending or 0,
                            c.num_redelivered or 0,
                            durable=bool(c.config.durable_name),
                        )
                    )
        return sorted(streams, key=lambda s: s.name), sorted(
            consumers, key=lambda c: (c.stream, c.name)
        )
    finally:
        await nc.close()


@dataclass(frozen=True)
class ParkedRow:
    """A channel's sends waiting in the sender's ``parked_sends`` (over its memory budget)."""

    tenant_id: str
    channel_id: str
    parked: int
    oldest_s: float


_PARKED = """
SELECT tenant_id, channel_id, count(*) AS parked,
    extract(epoch FROM now() - min(parked_at))::float8 AS oldest_s
FROM sender.parked_sends GROUP BY tenant_id, channel_id ORDER BY parked DESC LIMIT $1
"""


async def parked_sends(dsn: str, limit: int = 20) -> list[ParkedRow]:
    """The channels with the most parked sends (none before the sender's migrations ran)."""
    conn = await asyncpg.connect(dsn, timeout=3)
    try:
        rows = await conn.fetch(_PARKED, limit)
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await conn.close()
    return [ParkedRow(r["tenant_id"], r["channel_id"], r["parked"], r["oldest_s"]) for r in rows]
