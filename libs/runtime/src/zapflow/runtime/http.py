"""The HTTP server every service runs (health and metrics; the gateway's API too)."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service runner owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def build_server(
    routes: Sequence[BaseRoute], host: str, port: int, app: Starlette | None = None
) -> Server:
    """Serve ``routes`` — added to ``app`` when the service built its own (the gateway)."""
    if app is None:
        app = Starlette(routes=list(routes))
    else:
        app.router.routes.extend(routes)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    return Server(config)
