"""httpx on the egress policy: a transport whose every connection goes through the guard.

:class:`GuardedTransport` is httpx's own HTTP transport (connection pool, HTTP/1.1, TLS) on an
httpcore network backend that resolves the host with :meth:`EgressPolicy.resolve`, refuses
forbidden addresses and connects to a checked address; TLS still verifies the certificate for
the host name. Every connection is covered, so every redirect hop is too, whoever follows it.
Proxies from the environment are ignored (a proxy would resolve the name itself).
"""

from __future__ import annotations

import asyncio
import time
import typing
from typing import Final

import httpcore
import httpx

from zapflow.runtime.egress.policy import EgressPolicy, EgressRefused

DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's AnyIO backend behind :meth:`EgressPolicy.resolve`; no Unix sockets."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {type(exc).__name__}") from exc
        last: Exception | None = None
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused(path, None, "unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through ``policy``."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        verify: bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        # httpx offers no argument for the network backend: replace the pool it built with
        # the same one on the guarded backend (a test checks the guard answers, not this line)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


def guarded_client(
    policy: EgressPolicy, *, timeout: float | httpx.Timeout, verify: bool = True
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on a :class:`GuardedTransport`: no redirects followed by itself
    (use :func:`zapflow.runtime.egress.stream`), no proxies or ``.netrc`` from the environment."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, verify=verify),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
