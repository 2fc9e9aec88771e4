"""Helpers for tests that drive the simulator (its own and other packages').

* :func:`serve` runs any ASGI app (the simulator, a fake gateway) under uvicorn on a free
  loopback port inside the test's event loop;
* :class:`FakeGateway` records the webhooks the simulator posts and can refuse the first ones;
* :class:`FakeClock` is a monotonic clock moved by hand (``Deps(clock=...)``);
* :func:`meta_path` / :func:`bearer` address a configured Meta number.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from zapflow.runtime.http import Server
from zapflow.simulator.config import NumberConfig


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, *, startup_timeout: float = 10.0) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan on) on ``127.0.0.1:<free port>``; yields the base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
    )
    server = Server(config)  # no signal handlers of its own
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(startup_timeout):
        while not server.started:
            if task.done():
                task.result()  # raises what stopped the start
                raise RuntimeError("server stopped before it started")
            await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class FakeGateway:
    """Accepts ``POST /webhooks/{provider}/{channel}``, answering ``refuse_with`` statuses in turn
    before 200s; ``received`` holds (headers, raw body, path) of the accepted ones."""

    refuse_with: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, str]] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def webhook(request: Request) -> Response:
            status = self.refuse_with.pop(0) if self.refuse_with else 200
            self.answered.append(status)
            if status == 200:
                self.received.append(
                    (dict(request.headers), await request.body(), request.url.path)
                )
            self._changed.set()
            return Response(status_code=status)

        route = Route("/webhooks/{provider}/{channel}", webhook, methods=["POST"])
        return Starlette(routes=[route])

    async def wait_for(self, count: int) -> None:
        """Until ``count`` webhook POSTs were accepted (a Meta POST may batch several statuses);
        wrap it in ``asyncio.timeout``."""
        while len(self.received) < count:
            await self._changed.wait()
            self._changed.clear()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def meta_path(number: NumberConfig, version: str = "v21.0") -> str:
    """``/{version}/{phone_number_id}/messages`` of ``number``."""
    return f"/{version}/{number.phone_number_id}/messages"


def bearer(number: NumberConfig) -> dict[str, str]:
    """The ``Authorization`` header ``number`` expects (empty when it checks none)."""
    token = number.access_token
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
