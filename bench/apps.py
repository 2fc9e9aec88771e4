"""Reference ASGI apps: plain async callables, no framework, served by uvicorn in a subprocess.

* ``bench.apps:bare`` reads the request body and answers ``200 ok``: the ceiling of uvicorn itself.
* ``bench.apps:publish`` does the same after one JetStream publish of the body (with a
  ``Nats-Msg-Id``, as every Zapflow publish has) and waits for the ack: the ceiling of an HTTP edge
  that publishes, such as the gateway's webhook endpoint. Configured through ``ZF_BENCH_NATS_URL``
  and ``ZF_BENCH_SUBJECT``; the benchmark creates the stream beforehand.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from zapflow.runtime.broker import connect_tooling

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OK_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
}
_OK_BODY: Message = {"type": "http.response.body", "body": b"ok"}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(
    receive: Receive, send: Send, on_event: Callable[[str], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        kind = message["type"].removeprefix("lifespan.")
        await on_event(kind)
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def _nothing(_: str) -> None:
    return None


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every request with ``200 ok`` and do nothing else."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, _nothing)
        return
    await _read_body(receive)
    await send(_OK_START)
    await send(_OK_BODY)


class PublishApp:
    """One JetStream publish per request, then ``200 ok``; the connection lives in the lifespan."""

    def __init__(self) -> None:
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subject = ""

    async def _on_lifespan(self, kind: str) -> None:
        if kind == "startup":
            self._subject = os.environ["ZF_BENCH_SUBJECT"]
            self._nc = await connect_tooling(os.environ["ZF_BENCH_NATS_URL"], "bench")
            self._js = self._nc.jetstream()
        elif self._nc is not None:
            await self._nc.drain()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self._on_lifespan)
            return
        assert self._js is not None, "lifespan startup did not run"
        body = await _read_body(receive)
        await self._js.publish(self._subject, body, headers={"Nats-Msg-Id": uuid.uuid4().hex})
        await send(_OK_START)
        await send(_OK_BODY)


publish = PublishApp()
