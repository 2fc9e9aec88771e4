"""Serve any ASGI app with uvicorn in a subprocess and load it like the references.

``serve_asgi("zapflow.gateway.app:create_app", factory=True, env={...})`` starts one uvicorn worker
on a free loopback port (uvloop and httptools when installed, the same choice for every app), waits
until it accepts connections and stops it on exit. :func:`measure_asgi` adds the load with the run's
settings, which is all a later benchmark needs to put its figure beside ``asgi.publish.*``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bench.load import LoadResult, LoadSettings, Request, run_load
from bench.report import Figure
from zapflow.embedded.ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class ServeError(RuntimeError):
    """uvicorn exited or did not start listening in time; ``log`` holds its output."""

    def __init__(self, message: str, log: str) -> None:
        super().__init__(f"{message}\n--- uvicorn output ---\n{log}")
        self.log = log


@dataclass(frozen=True)
class AsgiServer:
    """A running uvicorn subprocess."""

    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def uvicorn_options() -> list[str]:
    """Event loop and HTTP parser flags: the fastest installed, identical for every app."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return [f"--loop={loop}", f"--http={http}"]


async def _wait_listening(proc: asyncio.subprocess.Process, port: int) -> bool:
    """True once the port accepts connections; False if the process exited first."""
    while proc.returncode is None:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return True
    return False


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@asynccontextmanager
async def serve_asgi(
    app: str,
    *,
    factory: bool = False,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    startup_timeout: float = 30.0,
) -> AsyncIterator[AsgiServer]:
    """Run ``app`` (``module:attr``; with ``factory=True`` a callable returning the app).

    ``env`` is added to this process's environment (e.g. ``ZF_GATEWAY_NATS_URL``); the repository
    root is on ``PYTHONPATH`` so that ``bench.*`` apps import. uvicorn's output goes to
    ``log_path`` (a temporary file by default) and is quoted in :class:`ServeError`.
    """
    with tempfile.TemporaryDirectory(prefix="zf-uvicorn-") as tmp:
        log = log_path or Path(tmp) / "uvicorn.log"
        for _attempt in range(3):  # the free port can be taken before uvicorn binds it: retry
            proc, port = await _spawn(app, factory=factory, env=env, log=log)
            try:
                try:
                    async with asyncio.timeout(startup_timeout):
                        listening = await _wait_listening(proc, port)
                except TimeoutError:
                    message = f"uvicorn {app} not listening after {startup_timeout}s"
                    raise ServeError(message, _tail(log)) from None
                if listening:
                    yield AsgiServer(HOST, port, proc.pid)
                    return
            finally:
                await _stop(proc)
            if b"address already in use" not in log.read_bytes().lower():
                break
        raise ServeError(f"uvicorn {app} exited with {proc.returncode}", _tail(log))


async def _spawn(
    app: str, *, factory: bool, env: Mapping[str, str] | None, log: Path
) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    args = [sys.executable, "-m", "uvicorn", app, f"--host={HOST}", f"--port={port}"]
    args += [*uvicorn_options(), "--workers=1", "--no-access-log", "--log-level=warning"]
    args += ["--lifespan=on", *(["--factory"] if factory else [])]
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=REPO_ROOT, env=child_env, stdout=out, stderr=out
        )
    return proc, port


def _tail(path: Path, limit: int = 4000) -> str:
    with suppress(OSError):
        return path.read_text(errors="replace")[-limit:]
    return ""


async def measure_asgi(
    app: str,
    request: Request,
    settings: LoadSettings,
    *,
    factory: bool = False,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
) -> LoadResult:
    """Serve ``app`` and load it with ``settings``; pass ``ctx.load`` to match the references."""
    async with serve_asgi(app, factory=factory, env=env, log_path=log_path) as server:
        return await run_load(server.host, server.port, request, settings)


def http_figures(
    prefix: str, result: LoadResult, *, against: Sequence[Figure] | None = None
) -> list[Figure]:
    """``<prefix>.rps``, ``.p50`` and ``.p99`` of one load result.

    Without ``against`` they are references (ratio 1); with the three figures of a reference (as
    returned by this function) each is compared with its counterpart.
    """
    figures = [
        Figure.baseline(f"{prefix}.rps", result.rps, "req/s"),
        Figure.baseline(f"{prefix}.p50", result.p50_ms, "ms", better="lower"),
        Figure.baseline(f"{prefix}.p99", result.p99_ms, "ms", better="lower"),
    ]
    if against is None:
        return figures
    return [Figure.against(f.name, f.value, ref) for f, ref in zip(figures, against, strict=True)]
