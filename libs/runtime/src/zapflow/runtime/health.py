"""``/healthz``, ``/readyz`` and ``/metrics`` for every service.

``/healthz`` answers while the process's event loop runs; ``/readyz`` runs the service's readiness
checks (NATS connected, database answering, every supervised task running — ``consumer:<durable>``,
``partitions:<group>``, ``task:<name>``) and answers 503 naming the failing ones. The checks are
read at every request, so a task supervised after start-up is checked too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from zapflow.runtime import metrics

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]


def health_routes(
    service: str, checks: dict[str, Check], timeout: float = 2.0
) -> Sequence[BaseRoute]:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"service": service, "status": "ok"})

    async def readyz(_: Request) -> Response:
        results: dict[str, bool] = {}
        for name, check in list(checks.items()):
            try:
                results[name] = await asyncio.wait_for(check(), timeout)
            except Exception:  # a failing dependency is a "not ready", never a 500
                logger.warning("readiness check failed", extra={"check": name}, exc_info=True)
                results[name] = False
        ready = all(results.values())
        metrics.READY.set(1 if ready else 0)
        return JSONResponse(
            {"service": service, "ready": ready, "checks": results},
            status_code=200 if ready else 503,
        )

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
