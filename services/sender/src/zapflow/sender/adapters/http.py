"""A lean HTTP/1.1 keep-alive transport, and :class:`LeanClient`, the provider client on it.

httpx's default transport (httpcore) locks and scans its whole connection pool on every request
and probes each idle socket; with a few dozen concurrent calls per number that cost more CPU
than everything else the sender does per message (about 1 ms per call measured here, against
~0.1 ms for this transport). This one keeps, per origin, a stack of idle connections and a
semaphore of ``max_connections``, and awaits :data:`BEFORE_WRITE` (the pace gate) right before
writing a request; it speaks plain HTTP/1.1 (``Content-Length`` or chunked
bodies, ``Connection: close`` honoured) over asyncio streams, with TLS for ``https``.

Every new connection goes through the egress guard (``EgressPolicy.open_connection``): the
provider's host is resolved, every address checked (loopback, private, metadata… refused unless
``ZF_EGRESS_ALLOW`` names them) and the connection opened to a checked address, so a tenant's
``base_url`` cannot reach the sender's own network. Answers are bounded: ``max_response_bytes``
of body (a provider's send answer is a few hundred bytes), 64 KiB of headers, and the read
timeout covers the whole answer.

Errors are httpx's own (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``, ``ReadError``,
``RemoteProtocolError``), so ``zapflow.providers`` classifies them exactly as with httpx's
transport; a refused address is the guard's ``EgressRefused`` (permanent). A connection that
failed in any way is closed, never reused.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from zapflow.runtime.egress import EgressPolicy

_MAX_HEADER_BYTES: Final = 64 * 1024
MAX_RESPONSE_BYTES: Final = 1024 * 1024
"""Default bound of a provider answer's body."""

BEFORE_WRITE: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "before_write", default=None
)
"""Awaited once the connection is ready, right before the request is written: the sender's
pace gate, so a call is accounted for the moment it leaves, not when it was prepared."""
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_TRANSPORT_HEADERS: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)
"""Headers the transport writes itself (or drops)."""
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
"""httpx's own JSON body encoding."""
_MAX_TARGETS: Final = 4096
Origin = tuple[str, str, int]


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


@dataclass
class _OriginPool:
    slots: asyncio.Semaphore
    idle: list[_Connection] = field(default_factory=list)


class LeanTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=LeanTransport(egress=...))``; timeouts come from the
    request, connections from ``egress``."""

    def __init__(
        self,
        *,
        egress: EgressPolicy,
        max_connections: int = 64,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ):
        self._egress = egress
        self._max = max_connections
        self._ssl = ssl_context
        self._max_body = max_response_bytes
        self._pools: dict[Origin, _OriginPool] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        status, headers, content = await self.exchange(
            _origin(request.url),
            _head(request, len(body)) + body,
            request.method,
            timeouts,
            request,
        )
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def exchange(
        self,
        origin: Origin,
        data: bytes,
        method: str,
        timeouts: Mapping[str, float | None],
        request: httpx.Request | None = None,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Write one serialized request (head and body) to ``origin`` on a pooled connection and
        read the answer: status, headers, body. Awaits :data:`BEFORE_WRITE` right before the
        write; errors are httpx's (``request`` only decorates them)."""
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _OriginPool(asyncio.Semaphore(self._max))
        async with pool.slots:
            connection = await self._connection(pool, origin, request, timeouts.get("connect"))
            gate = BEFORE_WRITE.get()
            if gate is not None:
                try:
                    await gate()
                except BaseException:
                    pool.idle.append(connection)  # nothing written: still clean
                    raise
            connection.writer.write(data)  # in the same step as the gate's return
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    status, headers, content, reusable = await _exchange(
                        connection, method, self._max_body
                    )
            except TimeoutError as exc:
                connection.close()
                raise httpx.ReadTimeout("provider did not answer in time", request=request) from exc
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                connection.close()
                raise httpx.ReadError(
                    f"connection failed: {type(exc).__name__}", request=request
                ) from exc
            except BaseException:  # cancelled mid-exchange, or a protocol error: never reuse
                connection.close()
                raise
            if reusable:
                pool.idle.append(connection)
            else:
                connection.close()
            return status, headers, content

    async def aclose(self) -> None:
        for pool in self._pools.values():
            for connection in pool.idle:
                connection.close()
            pool.idle.clear()

    async def _connection(
        self,
        pool: _OriginPool,
        origin: Origin,
        request: httpx.Request | None,
        connect_timeout_s: float | None,
    ) -> _Connection:
        while pool.idle:
            connection = pool.idle.pop()
            if connection.usable():
                return connection
            connection.close()
        scheme, host, port = origin
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl or ssl.create_default_context()
        try:
            reader, writer = await self._egress.open_connection(
                host, port, ssl=tls, limit=_MAX_HEADER_BYTES, connect_timeout_s=connect_timeout_s
            )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("connect timed out", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(
                f"connect failed: {type(exc).__name__}", request=request
            ) from exc
        return _Connection(reader, writer)


def _origin(url: httpx.URL) -> Origin:
    if url.scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}")
    return url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme]


async def _exchange(
    connection: _Connection, method: str, max_body: int
) -> tuple[int, list[tuple[str, str]], bytes, bool]:
    """Flush the written request, read the whole response; also whether the connection stays
    open."""
    await connection.writer.drain()
    status, headers = _parse_head(await connection.reader.readuntil(b"\r\n\r\n"))
    values = {k.lower(): v.lower() for k, v in headers}
    content, until_eof = await _read_body(connection.reader, values, status, method, max_body)
    return status, headers, content, not until_eof and values.get("connection") != "close"


def _head(request: httpx.Request, length: int) -> bytes:
    target = request.url.raw_path.decode("ascii")
    lines = [f"{request.method} {target} HTTP/1.1"]
    for name, value in request.headers.multi_items():
        lowered = name.lower()
        if lowered in ("content-length", "transfer-encoding", "connection", "accept-encoding"):
            continue
        lines.append(f"{name}: {value}")
    lines.append("Accept-Encoding: identity")
    if length or request.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError("malformed status line")
    headers = []
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise httpx.RemoteProtocolError("malformed header line")
            headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


def _too_large(max_body: int) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(f"provider answer larger than {max_body} bytes")


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], status: int, method: str, max_body: int
) -> tuple[bytes, bool]:
    """The body (at most ``max_body`` bytes, else ``RemoteProtocolError``), and whether it was
    delimited by the connection closing."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", False
    if "chunked" in headers.get("transfer-encoding", ""):
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(chunks), False
            total += size
            if total > max_body:
                raise _too_large(max_body)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is None:
        body = bytearray()
        while chunk := await reader.read(65536):
            body += chunk
            if len(body) > max_body:
                raise _too_large(max_body)
        return bytes(body), True
    if int(length) > max_body:
        raise _too_large(max_body)
    return await reader.readexactly(int(length)), False


class LeanClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` on a :class:`LeanTransport` whose ``request(method, url,
    headers=…, json=…)`` — the one call provider adapters make — goes straight to the
    transport: no ``Request``/``URL`` objects per call, no cookies, auth, redirects or event
    hooks (together about half the CPU of a call). The request written is the one httpx would
    write (client default headers, ``Host``, the JSON body as httpx encodes it); the answer is
    an ``httpx.Response`` without ``.request``; a header with a line break is refused
    (``LocalProtocolError``). Anything else (other arguments, a ``URL`` object) takes httpx's
    own path over the same transport.
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout,
        egress: EgressPolicy,
        max_connections: int = 64,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._lean = LeanTransport(
            egress=egress, max_connections=max_connections, ssl_context=ssl_context
        )
        super().__init__(timeout=timeout, transport=self._lean)
        self._timeouts: dict[str, float | None] = dict(timeout.as_dict())
        self._defaults = [
            (name, value)
            for name, value in self.headers.items()
            if name.lower() not in _TRANSPORT_HEADERS
        ]
        self._targets: dict[str, tuple[Origin, str]] = {}

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.get("headers") or {}
        if (
            not isinstance(url, str)
            or not kwargs.keys() <= {"headers", "json"}
            or not isinstance(headers, dict)
        ):
            return await super().request(method, url, **kwargs)
        if any("\r" in f"{n}{v}" or "\n" in f"{n}{v}" for n, v in headers.items()):
            raise httpx.LocalProtocolError("line break in a request header")
        target = self._targets.get(url)
        if target is None:
            target = self._target(url)
        origin, start = target
        payload = kwargs.get("json")
        body = b"" if payload is None else _JSON.encode(payload).encode()
        given = {name.lower() for name in headers}
        lines = [f"{method} {start}"]
        lines.extend(f"{n}: {v}" for n, v in self._defaults if n.lower() not in given)
        lines.extend(f"{n}: {v}" for n, v in headers.items() if n.lower() not in _TRANSPORT_HEADERS)
        lines.append("Accept-Encoding: identity")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        if payload is not None and "content-type" not in given:
            lines.append("Content-Type: application/json")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        status, answer, content = await self._lean.exchange(
            origin, head + body, method, self._timeouts
        )
        return httpx.Response(status, headers=answer, content=content)

    def _target(self, url: str) -> tuple[Origin, str]:
        """Origin, and the request line's target plus the ``Host`` header, of ``url``."""
        parsed = httpx.URL(url)
        origin = _origin(parsed)
        host = parsed.netloc.decode("ascii")
        target = (origin, f"{parsed.raw_path.decode('ascii')} HTTP/1.1\r\nHost: {host}")
        if len(self._targets) >= _MAX_TARGETS:
            self._targets.clear()
        self._targets[url] = target
        return target
