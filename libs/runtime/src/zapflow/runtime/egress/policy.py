"""The egress policy: resolve a host, refuse forbidden addresses, connect to what was checked.

:class:`EgressPolicy` holds the allowance (networks and host names an operator lets through
although their class is forbidden, e.g. loopback for the local simulator) and the resolver.
:meth:`EgressPolicy.resolve` looks a host up once and checks **every** address it returns; the
connection is then opened to one of those checked addresses, never to the name again, so a DNS
answer that changes between the check and the connect (rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from zapflow.contracts.errors import PermanentError
from zapflow.runtime.egress.addresses import (
    METADATA_NAMES,
    IPAddress,
    IPNetwork,
    embedded_ipv4,
    forbidden_class,
    parse_address,
)

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses`` as strings; raises ``OSError`` when the name does not resolve."""

LOOPBACK_ALLOWANCE: Final = "127.0.0.0/8,::1/128"
"""The allowance ``zapflow up`` and the test harness set: the simulator and fake servers."""
_STREAM_LIMIT: Final = 2**16


class EgressRefused(PermanentError):
    """The guard refused a destination: its address class is forbidden and not allowed.

    ``host`` is the name asked for, ``address`` the offending address (None when refused by
    name), ``reason`` the class (``loopback``, ``private``, ``metadata``…) or why else.
    Permanent: retrying reaches the same address.
    """

    def __init__(self, host: str, address: str | None, reason: str) -> None:
        where = f"{host} ({address})" if address and address != host else host
        super().__init__(f"refused outbound connection to {where}: {reason}", code="egress_refused")
        self.host = host
        self.address = address
        self.reason = reason


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The operating system's resolver (``getaddrinfo``), TCP addresses only."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _normalize_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class EgressPolicy:
    """What outbound calls to tenant- or payload-chosen URLs may reach.

    ``allow_networks`` / ``allow_hosts`` let through addresses (or every address of a name)
    whose class is otherwise refused; empty by default, so production reaches public unicast
    addresses only. ``resolver`` is the DNS lookup (tests inject their own).
    """

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def parse(
        cls, allowance: str | Iterable[str], *, resolver: Resolver | None = None
    ) -> EgressPolicy:
        """A policy from an allowance: comma-separated CIDRs, addresses or host names
        (``"127.0.0.0/8,::1,evolution.internal"``). Raises ``ValueError`` for a metadata name."""
        entries = allowance.split(",") if isinstance(allowance, str) else list(allowance)
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = _normalize_host(entry)
            if name in METADATA_NAMES or not name or "/" in name:
                raise ValueError(f"cannot allow egress to {entry!r}")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts), resolver or system_resolver)

    def allowed(self, address: IPAddress) -> bool:
        """True if ``address`` may be reached: public, or inside the allowance."""
        if forbidden_class(address) is None:
            return True
        plain = embedded_ipv4(address)
        return any(plain in net or address in net for net in self.allow_networks)

    def check(self, host: str, address: IPAddress) -> None:
        """Raise :class:`EgressRefused` unless ``address`` (an address of ``host``) is allowed."""
        if not self.allowed(address):
            raise EgressRefused(host, str(address), forbidden_class(address) or "refused")

    async def resolve(self, host: str, port: int) -> tuple[IPAddress, ...]:
        """Every address of ``host``, each checked; :class:`EgressRefused` if any is refused
        (a name that mixes public and private addresses is refused as a whole), ``OSError``
        if it does not resolve."""
        name = _normalize_host(host)
        if name in METADATA_NAMES:
            raise EgressRefused(host, None, "metadata")
        literal = parse_address(name)
        if literal is not None:
            self.check(host, literal)
            return (literal,)
        found = await self.resolver(name, port)
        addresses: list[IPAddress] = []
        for text in found:
            address = parse_address(text)
            if address is None:
                raise OSError(f"resolver returned a non-address for {host}")
            if name not in self.allow_hosts:
                self.check(host, address)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise OSError(f"{host} has no address")
        return tuple(addresses)

    async def open_connection(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        limit: int = _STREAM_LIMIT,
        connect_timeout_s: float | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``asyncio.open_connection`` to a checked address of ``host`` (TLS with ``host`` as
        the server name). Raises :class:`EgressRefused`, ``TimeoutError`` or ``OSError``."""
        timeout = connect_timeout_s
        deadline = None if timeout is None else time.monotonic() + timeout
        async with asyncio.timeout(timeout):
            addresses = await self.resolve(host, port)
        last: OSError | None = None
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                async with asyncio.timeout(remaining):
                    return await asyncio.open_connection(
                        str(address),
                        port,
                        ssl=ssl,
                        server_hostname=_normalize_host(host) if ssl is not None else None,
                        limit=limit,
                    )
            except OSError as exc:
                last = exc
        assert last is not None
        raise last
