"""The simulator's HTTP surface (Starlette): provider endpoints plus ``/_…`` test endpoints.

=======================================  ===============================================
``POST /{version}/{phone_number_id}/messages``  Meta Cloud API send and mark-as-read
``POST /message/sendText/{instance}``           Evolution API v2 send text
``GET /_audit``                                 audit log as JSON lines (``?channel_id=``,
                                                ``?since_seq=``)
``GET /_stats``                                 counts per number, max per 1 s, webhooks
``POST /_storm``                                ``{"seconds": N}``: answer 130429 for N s
``GET /healthz``, ``GET /readyz``               liveness / readiness
=======================================  ===============================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zapflow.simulator.auditlog import AuditRecord
from zapflow.simulator.config import SimulatorSettings
from zapflow.simulator.core import Deps, Reply, Simulator

NDJSON = "application/x-ndjson"


def create_app(settings: SimulatorSettings, deps: Deps | None = None) -> Starlette:
    """The ASGI app; its lifespan runs the background work (webhooks, audit flushes)."""
    sim = Simulator(settings, deps)

    async def meta_messages(request: Request) -> Response:
        params = request.path_params
        reply = sim.meta_request(
            params["version"],
            params["phone_number_id"],
            request.headers.get("authorization"),
            await request.body(),
        )
        return await _answer(reply)

    async def evolution_send_text(request: Request) -> Response:
        reply = sim.evolution_request(
            request.path_params["instance"], request.headers.get("apikey"), await request.body()
        )
        return await _answer(reply)

    async def audit_log(request: Request) -> Response:
        channel = request.query_params.get("channel_id")
        try:
            since = int(request.query_params.get("since_seq", "0"))
        except ValueError:
            return JSONResponse({"error": "since_seq must be an integer"}, status_code=400)
        records = await sim.audit_log.records()
        lines = (r.to_json() for r in records if _wanted(r, channel, since))
        return Response("".join(f"{line}\n" for line in lines), media_type=NDJSON)

    async def stats(_: Request) -> Response:
        return JSONResponse(sim.snapshot())

    async def storm(request: Request) -> Response:
        try:
            seconds = float(json.loads(await request.body())["seconds"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'body must be {"seconds": <number>}'}, status_code=400)
        sim.start_storm(seconds)
        return JSONResponse({"storm_seconds": seconds})

    async def health(_: Request) -> Response:
        return JSONResponse({"service": "simulator", "status": "ok"})

    async def ready(_: Request) -> Response:
        return JSONResponse({"service": "simulator", "ready": True, "checks": {}})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with sim.running():
            yield

    app = Starlette(
        routes=[
            Route("/message/sendText/{instance}", evolution_send_text, methods=["POST"]),
            Route("/{version}/{phone_number_id}/messages", meta_messages, methods=["POST"]),
            Route("/_audit", audit_log, methods=["GET"]),
            Route("/_stats", stats, methods=["GET"]),
            Route("/_storm", storm, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/readyz", ready, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.simulator = sim
    return app


async def _answer(reply: Reply) -> Response:
    if reply.delay_s > 0:
        await asyncio.sleep(reply.delay_s)
    return JSONResponse(reply.body, status_code=reply.status, headers=dict(reply.headers))


def _wanted(record: AuditRecord, channel: str | None, since_seq: int) -> bool:
    return record.seq > since_seq and (channel is None or record.channel_id == channel)
