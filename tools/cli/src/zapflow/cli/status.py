"""``zapflow status``: services' health, streams with message counts, consumers with backlog."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx
import nats
from nats.js.errors import NotFoundError

from zapflow.cli.topology import SERVICES
from zapflow.runtime.broker import server_urls


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
    nc = await nats.connect(server_urls(nats_url), connect_timeout=3, max_reconnect_attempts=1)
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
