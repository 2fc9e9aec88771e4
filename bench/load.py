"""HTTP load generator: ``wrk`` when installed, a pure-asyncio fallback otherwise.

Both drive a fixed number of keep-alive connections, each sending the next request as soon as the
previous response arrives (closed loop), for a fixed duration after a short warm-up. Latency is
measured per request from the write to the end of the response body, so p50/p99 of the two tools are
comparable, though wrk (C, its own thread) saturates a server better than the Python fallback, which
shares a core with the benchmark runner. Compare figures only within one run and one tool: the tool
used is in :attr:`LoadResult.tool`.

A benchmark calls :func:`run_load` with ``ctx.load`` (the run's :class:`LoadSettings`), so every
HTTP figure and its reference are measured with the same connections, duration and tool.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

Tool = Literal["auto", "wrk", "python"]


class LoadError(RuntimeError):
    """The load generator failed, or too many requests failed for the figure to mean anything."""


@dataclass(frozen=True)
class Request:
    """The request every connection sends in a loop (``Host``/``Content-Length`` are added)."""

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def post_json(cls, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Request:
        """A POST with a JSON body, e.g. a provider webhook."""
        return cls("POST", path, {"Content-Type": "application/json", **(headers or {})}, body)


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long to push; one instance per run, shared by all HTTP figures."""

    connections: int = 32
    duration: int = 5
    """Measured seconds (whole seconds: wrk takes no fractions)."""
    warmup: int = 1
    """Seconds of load before the measured window, discarded."""
    threads: int = 1
    """wrk threads; one leaves the second core to the server on a 2-core machine."""
    timeout: float = 5.0
    """Seconds before a request counts as a timeout error."""
    tool: Tool = "auto"
    max_error_ratio: float = 0.01
    """Above this share of failed requests (socket errors, timeouts, status >= 400), raise."""


@dataclass(frozen=True)
class LoadResult:
    """What one measured window produced."""

    tool: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        """Completed requests per second, failed ones included (see ``errors``)."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def resolve_tool(tool: Tool) -> Literal["wrk", "python"]:
    """``auto`` means wrk when it is on ``PATH``."""
    if tool == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if tool == "wrk" and not shutil.which("wrk"):
        raise LoadError("wrk is not installed (apt-get install -y wrk)")
    return tool


async def run_load(
    host: str, port: int, request: Request, settings: LoadSettings = LoadSettings()
) -> LoadResult:
    """Warm up, then measure ``settings.duration`` seconds of load against ``host:port``."""
    tool = resolve_tool(settings.tool)
    generate = _wrk if tool == "wrk" else _python
    if settings.warmup > 0:
        await generate(host, port, request, settings, settings.warmup)
    result = await generate(host, port, request, settings, settings.duration)
    if result.requests == 0 or result.errors > settings.max_error_ratio * result.requests:
        raise LoadError(
            f"{result.errors} of {result.requests} requests to {request.method} {request.path} "
            f"failed ({result.tool})"
        )
    return result


# --- wrk --------------------------------------------------------------------------------------

_MARKER = "ZFBENCH "

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%.1f,"p99_us":%.1f}\\n',
    marker, summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_string(value: str | bytes) -> str:
    """A Lua string literal; every byte outside plain printable ASCII becomes a ``\\ddd`` escape."""
    raw = value.encode() if isinstance(value, str) else value
    safe = set(range(0x20, 0x7F)) - {ord('"'), ord("\\")}
    return '"' + "".join(chr(b) if b in safe else f"\\{b:03d}" for b in raw) + '"'


def wrk_script(request: Request) -> str:
    """The Lua script that sets the request and prints the summary line we parse."""
    lines = [f"marker = {lua_string(_MARKER)}", f"wrk.method = {lua_string(request.method)}"]
    if request.body:
        lines.append(f"wrk.body = {lua_string(request.body)}")
    lines.extend(
        f"wrk.headers[{lua_string(name)}] = {lua_string(value)}"
        for name, value in request.headers.items()
    )
    return "\n".join(lines) + "\n" + _DONE


async def _wrk(
    host: str, port: int, request: Request, settings: LoadSettings, seconds: int
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="zf-wrk-") as tmp:
        script = Path(tmp) / "request.lua"
        script.write_text(wrk_script(request), encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            "wrk",
            f"--threads={settings.threads}",
            f"--connections={max(settings.connections, settings.threads)}",
            f"--duration={seconds}s",
            f"--timeout={max(1, math.ceil(settings.timeout))}s",
            f"--script={script}",
            f"http://{host}:{port}{request.path}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=seconds + 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    text = out.decode(errors="replace")
    summary = next((ln for ln in text.splitlines() if ln.startswith(_MARKER)), None)
    if proc.returncode != 0 or summary is None:
        raise LoadError(f"wrk failed ({proc.returncode}): {err.decode(errors='replace')}{text}")
    data = json.loads(summary[len(_MARKER) :])
    return LoadResult(
        tool="wrk",
        requests=int(data["requests"]),
        errors=int(data["errors"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
    )


# --- pure-Python fallback ---------------------------------------------------------------------


def encode_request(host: str, port: int, request: Request) -> bytes:
    """The raw HTTP/1.1 keep-alive request the fallback generator writes."""
    head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}:{port}"]
    head.extend(f"{name}: {value}" for name, value in request.headers.items())
    if request.body or request.method in {"POST", "PUT", "PATCH"}:
        head.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection open."""
    status, keep_alive, _ = await read_full_response(reader)
    return status, keep_alive


async def read_full_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Read one response: its status, whether the connection stays open, and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")  # no trailers expected: the empty line after 0-chunk
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection") != "close", body


@dataclass
class _Tally:
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0


async def _connection(
    host: str, port: int, raw: bytes, deadline: float, request_timeout: float, tally: _Tally
) -> None:
    """One client connection; reconnects after errors or ``Connection: close``."""
    while time.monotonic() < deadline:
        try:
            async with asyncio.timeout(request_timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            tally.errors += 1
            await asyncio.sleep(0.01)  # refused connections fail at once: don't spin
            continue
        try:
            await _requests(reader, writer, raw, deadline, request_timeout, tally)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            tally.errors += 1
        finally:
            writer.close()


async def _requests(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    raw: bytes,
    deadline: float,
    request_timeout: float,
    tally: _Tally,
) -> None:
    """Send requests back to back on one connection; return when the server or the clock ends it."""
    while True:
        started = time.perf_counter_ns()
        writer.write(raw)
        async with asyncio.timeout(request_timeout):
            status, keep_alive = await read_response(reader)
        if time.monotonic() >= deadline:
            return
        tally.latencies_ns.append(time.perf_counter_ns() - started)
        if status >= 400:
            tally.errors += 1
        if not keep_alive:
            return


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending list; 0 for an empty one."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def _python(
    host: str, port: int, request: Request, settings: LoadSettings, seconds: int
) -> LoadResult:
    raw = encode_request(host, port, request)
    tally = _Tally()
    started = time.monotonic()
    deadline = started + seconds
    async with asyncio.TaskGroup() as tg:
        for _ in range(settings.connections):
            tg.create_task(_connection(host, port, raw, deadline, settings.timeout, tally))
    elapsed = min(time.monotonic(), deadline) - started
    latencies = sorted(tally.latencies_ns)
    return LoadResult(
        tool="python",
        requests=len(latencies),
        errors=tally.errors,
        seconds=elapsed,
        p50_ms=percentile(latencies, 50) / 1e6,
        p99_ms=percentile(latencies, 99) / 1e6,
    )


# --- a fixed list of distinct requests ---------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    """What :func:`post_all` did: every request answered ``expected``, between two epoch times."""

    requests: int
    first_sent: float
    """``time.time()`` when the first request was written."""
    last_answered: float
    """``time.time()`` when the last answer was read."""
    retries: int
    """Requests written again after a retryable answer (429, 503) or a broken connection."""

    @property
    def rps(self) -> float:
        """Requests per second, first write to last answer (retries not counted)."""
        elapsed = self.last_answered - self.first_sent
        return self.requests / elapsed if elapsed > 0 else 0.0


RETRYABLE: Final = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS: Final = 20


async def post_all(
    host: str,
    port: int,
    requests: Sequence[Request],
    connections: int,
    *,
    expected: int = 202,
    request_timeout: float = 30.0,
) -> BatchResult:
    """Send every request once, over ``connections`` keep-alive connections (a closed loop: each
    connection takes the next request when its answer arrived), until each answered
    ``expected``.

    A retryable answer (429, 502-504) or a broken connection writes the same request again (after
    0.1 s for an answer), as a client with an idempotency key would; any
    other answer raises :class:`LoadError` with its status and body.
    """
    raws = [encode_request(host, port, r) for r in requests]
    pending = iter(range(len(raws)))
    first: list[float] = []
    last = 0.0
    retries = 0

    async def one_connection() -> None:
        nonlocal last, retries
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            for index in pending:
                error = ""
                for _attempt in range(MAX_ATTEMPTS):
                    if writer is None or reader is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    if not first:
                        first.append(time.time())
                    try:
                        writer.write(raws[index])
                        async with asyncio.timeout(request_timeout):
                            status, keep_alive, body = await read_full_response(reader)
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        writer.close()
                        reader = writer = None
                        retries += 1
                        error = f"{type(exc).__name__}: {exc}"
                        continue
                    if not keep_alive:
                        writer.close()
                        reader = writer = None
                    if status == expected:
                        last = max(last, time.time())
                        break
                    error = f"status {status}: {body[:300]!r}"
                    if status not in RETRYABLE:
                        raise LoadError(f"request {index} answered {error}")
                    retries += 1
                    await asyncio.sleep(0.1)
                else:
                    raise LoadError(f"request {index} failed {MAX_ATTEMPTS} times: {error}")
        finally:
            if writer is not None:
                writer.close()

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(connections, len(raws))):
                tg.create_task(one_connection())
    except ExceptionGroup as group:  # the first failure says what went wrong
        raise group.exceptions[0] from None
    return BatchResult(len(raws), first[0] if first else 0.0, last, retries)
