"""JetStream helpers for benchmarks: a throwaway stream per measurement."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.js import JetStreamContext

from zapflow.runtime.broker import connect_tooling


@asynccontextmanager
async def temp_stream(js: JetStreamContext) -> AsyncIterator[str]:
    """A fresh file-backed stream (default 2 min duplicate window); yields its only subject."""
    name = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
    subject = f"bench.{name.lower()}"
    await js.add_stream(name=name, subjects=[subject])
    try:
        yield subject
    finally:
        await js.delete_stream(name)


@asynccontextmanager
async def temp_stream_at(nats_url: str) -> AsyncIterator[str]:
    """:func:`temp_stream` with a connection of its own, for a subprocess that publishes to it."""
    nc = await connect_tooling(nats_url, "bench")
    try:
        async with temp_stream(nc.jetstream()) as subject:
            yield subject
    finally:
        await nc.close()
