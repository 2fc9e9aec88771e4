"""Reference HTTP figures: uvicorn serving a bare ASGI app, and one that publishes per request.

Both apps (:mod:`bench.apps`) get the same POST of the webhook body (:data:`REFERENCE_REQUEST`)
under the run's load settings. ``asgi.bare.*`` is the ceiling of uvicorn on this machine;
``asgi.publish.*`` adds one acknowledged JetStream publish per request and is read against the bare
app: its ratio is the price of the publish. A service benchmark (e.g. the gateway webhook) puts its
figures beside ``asgi.publish.*`` through :func:`reference`, which measures each reference at most
once per run.
"""

from __future__ import annotations

from typing import Final, Literal

from bench.asgi import http_figures, measure_asgi
from bench.context import Context
from bench.jetstream import temp_stream_at
from bench.load import LoadResult, Request
from bench.payloads import WEBHOOK_BODY
from bench.report import Figure

REFERENCE_REQUEST: Final = Request.post_json("/webhook", WEBHOOK_BODY)
"""The request both reference apps are loaded with."""

App = Literal["bare", "publish"]


async def run(ctx: Context) -> list[Figure]:
    bare = await reference(ctx, "bare")
    publish = await reference(ctx, "publish")
    bare_figures = http_figures("asgi.bare", bare)
    return [*bare_figures, *http_figures("asgi.publish", publish, against=bare_figures)]


async def reference(ctx: Context, app: App, request: Request = REFERENCE_REQUEST) -> LoadResult:
    """The load result of reference ``app`` under ``request``, measured once per run.

    Pass your own ``request`` (same method, path, headers and body as your benchmark) when the
    comparison should hold the request constant; the reference apps accept any request.
    """
    return await ctx.once(f"asgi:{app}:{request!r}", lambda: _measure(ctx, app, request))


async def _measure(ctx: Context, app: App, request: Request) -> LoadResult:
    log = ctx.log_path(f"uvicorn-{app}")
    if app == "bare":
        return await measure_asgi("bench.apps:bare", request, ctx.load, log_path=log)
    async with temp_stream_at(ctx.nats_url) as subject:
        env = {"ZF_BENCH_NATS_URL": ctx.nats_url, "ZF_BENCH_SUBJECT": subject}
        return await measure_asgi("bench.apps:publish", request, ctx.load, env=env, log_path=log)
