"""The gateway's webhook hot path beside the reference app that publishes once per request.

``gateway.webhook.rps/.p50/.p99``: the real gateway — the runtime ``Service`` with its
migrations, pool, real channel cache, flood guard, outbox relay and credentials responder —
served by uvicorn in a subprocess exactly like the references (:func:`bench.asgi.measure_asgi`,
same flags, same load tool and settings), loaded with ``POST /webhooks/meta/bench-meta`` of
:data:`bench.payloads.WEBHOOK_BODY` with a real ``X-Hub-Signature-256``. Each request is looked
up in the cache, rate-limited, verified (HMAC-SHA256), checked for Meta's envelope, wrapped in a
``WebhookReceived`` and published to ``ZF_INBOUND`` with one acknowledged JetStream publish.

Compared with ``asgi.publish.*`` (``bench.apps:publish``: read the body, one acknowledged
publish) measured in the same run with the same request (method, path, headers and body).

The subprocess imports :func:`create_app`, which starts the gateway's ``Service`` in the ASGI
lifespan and hands every request to the service's own app (``svc.app``); the service's own HTTP
listener also runs, on a port of its own, idle.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from importlib.resources import files
from typing import Final

import asyncpg
from starlette.types import ASGIApp, Receive, Scope, Send

from bench import bench_asgi
from bench.asgi import http_figures, measure_asgi
from bench.context import Context
from bench.load import Request
from bench.payloads import WEBHOOK_BODY
from bench.report import Figure
from zapflow.embedded.ports import free_port
from zapflow.gateway import channels, tenants
from zapflow.gateway.app import create_service
from zapflow.gateway.crypto import SecretBox
from zapflow.gateway.schemas import ChannelCreate, PaceIn
from zapflow.gateway.settings import Settings
from zapflow.gateway.store import SCHEMA
from zapflow.runtime import db
from zapflow.runtime.service import Service

TENANT: Final = "bench"
CHANNEL: Final = "bench-meta"
APP_SECRET: Final = "bench-app-secret"
SIGNATURE: Final = (
    "sha256=" + hmac.new(APP_SECRET.encode(), WEBHOOK_BODY, hashlib.sha256).hexdigest()
)
REQUEST: Final = Request.post_json(
    f"/webhooks/meta/{CHANNEL}", WEBHOOK_BODY, {"X-Hub-Signature-256": SIGNATURE}
)


async def run(ctx: Context) -> list[Figure]:
    dsn = await ctx.database("bench_gateway")
    await _seed(dsn, Settings().secrets_key.get_secret_value())
    reference = await bench_asgi.reference(ctx, "publish", REQUEST)
    env = {
        "NATS_URL": ctx.nats_url,
        "DATABASE_URL": dsn,
        "ZF_GATEWAY_HTTP_PORT": str(free_port()),
        "ZF_GATEWAY_WEBHOOK_RATE_PER_S": "1e9",
        "ZF_GATEWAY_WEBHOOK_BURST": "1000000000",
        "ZF_GATEWAY_LOG_LEVEL": "WARNING",
    }
    result = await measure_asgi(
        "bench.bench_gateway:create_app",
        REQUEST,
        ctx.load,
        factory=True,
        env=env,
        log_path=ctx.log_path("gateway"),
    )
    return http_figures("gateway.webhook", result, against=http_figures("asgi.publish", reference))


async def _seed(dsn: str, secrets_key: str) -> None:
    """The bench tenant and its Meta channel (idempotent across ``--repeat`` rounds)."""
    await db.migrate(dsn, SCHEMA, files("zapflow.gateway") / "migrations")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f"{SCHEMA}, public"})
    try:
        await tenants.create_tenant(conn, TENANT, "Benchmark")
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM channels WHERE id = $1)", CHANNEL):
            channel = ChannelCreate(
                id=CHANNEL,
                provider="meta",
                pace=PaceIn(rate_per_second=80),
                secrets={"app_secret": APP_SECRET},
            )
            await channels.register(conn, SecretBox.from_setting(secrets_key), TENANT, channel)
    finally:
        await conn.close()


class GatewayUnderUvicorn:
    """An ASGI app running the gateway ``Service`` in its lifespan (for an external uvicorn)."""

    def __init__(self) -> None:
        self._service: Service | None = None
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            assert self._app is not None, "lifespan startup did not run"
            await self._app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                settings = Settings()
                logging.getLogger().setLevel(settings.log_level)
                self._service = create_service(settings)
                await self._service.start()
                self._app = self._service.app
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._service is not None:
                    await self._service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> GatewayUnderUvicorn:
    """The uvicorn factory (``--factory bench.bench_gateway:create_app``)."""
    return GatewayUnderUvicorn()
