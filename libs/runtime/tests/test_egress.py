"""The egress guard: every forbidden address class refused after resolution, on every redirect
hop, with credentials dropped across origins, and the operator's allowance letting loopback in.

Names are resolved by a resolver the test controls (``EgressPolicy(resolver=...)``), so a public
looking name can be made to answer a private address, as an attacker's DNS would.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import httpx
import pytest

from zapflow.runtime.egress import (
    LOOPBACK_ALLOWANCE,
    EgressPolicy,
    EgressRefused,
    forbidden_class,
    guarded_client,
    stream,
)
from zapflow.runtime.settings import BaseServiceSettings

CLASSES = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"),
    ("fc00::1", "private"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("100.64.0.1", "shared"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "reserved"),
    ("198.18.0.1", "reserved"),
    ("2001:db8::1", "reserved"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "metadata"),
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("64:ff9b::7f00:1", "loopback"),
    ("2002:c0a8:0101::1", "private"),
    ("::7f00:1", "reserved"),
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]


def answering(*addresses: str) -> Callable[[str, int], Awaitable[Sequence[str]]]:
    """A resolver whose every name resolves to ``addresses``; records the names asked."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        resolve.asked.append(host)  # type: ignore[attr-defined]
        return list(addresses)

    resolve.asked = []  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(("address", "name"), CLASSES)
def test_each_forbidden_class_is_named(address: str, name: str) -> None:
    assert forbidden_class(ipaddress.ip_address(address)) == name


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_pass(address: str) -> None:
    assert forbidden_class(ipaddress.ip_address(address)) is None
    assert EgressPolicy().allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize(("address", "name"), CLASSES)
async def test_a_name_resolving_into_each_class_is_refused(address: str, name: str) -> None:
    policy = EgressPolicy(resolver=answering(address))
    with pytest.raises(EgressRefused) as refused:
        await policy.resolve("media.example.com", 443)
    assert refused.value.reason == name
    assert refused.value.address == str(ipaddress.ip_address(address))
    assert refused.value.code == "egress_refused"


async def test_one_forbidden_address_among_public_ones_refuses_the_name() -> None:
    policy = EgressPolicy(resolver=answering("8.8.8.8", "10.0.0.7"))
    with pytest.raises(EgressRefused, match="private"):
        await policy.resolve("mixed.example.com", 443)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "::ffff:7f00:1",
        "169.254.169.254",
        "metadata.google.internal",
        "METADATA.google.internal.",
    ],
)
async def test_literals_and_metadata_names_are_refused_without_a_lookup(host: str) -> None:
    resolver = answering("8.8.8.8")
    with pytest.raises(EgressRefused):
        await EgressPolicy(resolver=resolver).resolve(host, 80)
    assert resolver.asked == []  # type: ignore[attr-defined]


async def test_the_allowance_lets_named_networks_and_hosts_through() -> None:
    loopback = EgressPolicy.parse(LOOPBACK_ALLOWANCE, resolver=answering("127.0.0.1"))
    assert await loopback.resolve("localhost", 80) == (ipaddress.ip_address("127.0.0.1"),)
    assert await loopback.resolve("::1", 80) == (ipaddress.ip_address("::1"),)
    assert await loopback.resolve("::ffff:127.0.0.1", 80)  # the mapped form of an allowed one
    with pytest.raises(EgressRefused, match="private"):
        await EgressPolicy.parse(LOOPBACK_ALLOWANCE).resolve("10.0.0.1", 80)
    named = EgressPolicy.parse("evolution.internal", resolver=answering("10.2.3.4"))
    assert await named.resolve("Evolution.Internal", 8080)
    with pytest.raises(EgressRefused):
        await named.resolve("other.internal", 8080)


def test_the_allowance_refuses_metadata_names_and_reads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="cannot allow"):
        EgressPolicy.parse("metadata.google.internal")
    monkeypatch.delenv("ZF_EGRESS_ALLOW", raising=False)
    assert BaseServiceSettings().egress_policy().allow_networks == ()  # production: nothing
    monkeypatch.setenv("ZF_EGRESS_ALLOW", "127.0.0.0/8, ::1")
    policy = BaseServiceSettings().egress_policy()
    assert policy.allowed(ipaddress.ip_address("127.0.0.1"))
    assert not policy.allowed(ipaddress.ip_address("192.168.0.1"))


# -- against real servers on loopback ------------------------------------------------------------


Handler = Callable[[str, dict[str, str]], tuple[int, dict[str, str], bytes]]


class Recorder:
    """A tiny HTTP/1.1 server on 127.0.0.1; ``handler(path, headers)`` answers each request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = head[0].split(" ")[1]
        headers = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        self.requests.append((path, headers))
        status, extra, body = self.handler(path, headers)
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        writer.close()


async def _started(handler: Handler) -> tuple[Recorder, asyncio.Server]:
    recorder = Recorder(handler)
    server = await asyncio.start_server(recorder.serve, "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    return recorder, server


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[Handler], Awaitable[Recorder]]]:
    started: list[asyncio.Server] = []

    async def start(handler: Handler) -> Recorder:
        recorder, server = await _started(handler)
        started.append(server)
        return recorder

    yield start
    for server in started:
        server.close()
        await server.wait_closed()


def ok(_path: str, _headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return 200, {}, b"hello"


async def test_the_guarded_client_refuses_loopback_unless_allowed(servers) -> None:
    recorder = await servers(ok)
    url = f"http://127.0.0.1:{recorder.port}/file"
    async with guarded_client(EgressPolicy(), timeout=5) as client:
        with pytest.raises(EgressRefused, match="loopback"):
            await client.get(url)
    assert recorder.requests == []
    async with guarded_client(EgressPolicy.parse(LOOPBACK_ALLOWANCE), timeout=5) as client:
        assert (await client.get(url)).content == b"hello"


async def test_a_public_name_rebound_to_loopback_is_refused_at_connect(servers) -> None:
    recorder = await servers(ok)
    policy = EgressPolicy(resolver=answering("127.0.0.1"))
    async with guarded_client(policy, timeout=5) as client:
        with pytest.raises(EgressRefused):
            await client.get(f"http://cdn.example.com:{recorder.port}/x")
    assert recorder.requests == []


async def test_the_connection_goes_to_the_checked_address(servers) -> None:
    recorder = await servers(ok)
    allowed = EgressPolicy.parse("127.0.0.1/32", resolver=answering("127.0.0.1"))
    async with guarded_client(allowed, timeout=5) as client:
        response = await client.get(f"http://media.example.com:{recorder.port}/x")
    assert response.content == b"hello"
    assert recorder.requests[0][1]["host"] == f"media.example.com:{recorder.port}"


async def test_a_redirect_into_a_forbidden_address_is_refused(servers) -> None:
    inner = await servers(ok)
    outer = await servers(
        lambda p, h: (302, {"Location": f"http://169.254.169.254:{inner.port}/latest"}, b"")
    )
    # the first hop's own address is allowed; the redirect target is metadata
    policy = EgressPolicy.parse("127.0.0.1/32")
    async with guarded_client(policy, timeout=5) as client:
        with pytest.raises(EgressRefused, match="metadata"):
            async with stream(client, "GET", f"http://127.0.0.1:{outer.port}/img"):
                pass
        # httpx's own redirect following is covered too: the check is in the connection
        with pytest.raises(EgressRefused, match="metadata"):
            await client.get(f"http://127.0.0.1:{outer.port}/img", follow_redirects=True)
    assert inner.requests == []


async def test_a_redirect_to_a_name_resolving_privately_is_refused(servers) -> None:
    outer = await servers(lambda p, h: (301, {"Location": "http://internal.example.com/"}, b""))

    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"] if host == "127.0.0.1" else ["192.168.0.10"]

    policy = EgressPolicy.parse("127.0.0.1/32", resolver=resolver)
    async with guarded_client(policy, timeout=5) as client:
        with pytest.raises(EgressRefused, match="private"):
            async with stream(client, "GET", f"http://127.0.0.1:{outer.port}/"):
                pass


async def test_a_cross_origin_redirect_drops_credentials_a_same_origin_one_keeps_them(
    servers,
) -> None:
    target = await servers(ok)
    same = {"n": 0}

    def first(path: str, _headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path == "/start":
            return 302, {"Location": "/again"}, b""  # same origin: keeps them
        same["n"] += 1
        return 307, {"Location": f"http://localhost:{target.port}/elsewhere?x=1"}, b""

    origin = await servers(first)
    secret = {
        "Authorization": "Bearer channel-token",
        "apikey": "evolution-key",
        "Client-Token": "zapi-token",
        "Accept": "image/*",
    }
    async with (
        guarded_client(EgressPolicy.parse(LOOPBACK_ALLOWANCE), timeout=5) as client,
        stream(client, "GET", f"http://127.0.0.1:{origin.port}/start", headers=secret) as resp,
    ):
        assert await resp.aread() == b"hello"
    again = origin.requests[1][1]
    assert again["authorization"] == "Bearer channel-token"
    assert again["apikey"] == "evolution-key"
    # localhost is another origin (same address, other host): nothing but Accept follows
    assert [path for path, _ in target.requests] == ["/elsewhere?x=1"]
    moved = target.requests[0][1]
    assert "authorization" not in moved
    assert "apikey" not in moved
    assert "client-token" not in moved
    assert moved["accept"] == "image/*"


async def test_posts_are_not_redirected_and_redirect_loops_end(servers) -> None:
    looping = await servers(lambda p, h: (302, {"Location": "/again"}, b""))
    async with guarded_client(EgressPolicy.parse(LOOPBACK_ALLOWANCE), timeout=5) as client:
        url = f"http://127.0.0.1:{looping.port}/"
        async with stream(client, "POST", url, json={"a": 1}) as response:
            assert response.status_code == 302
        with pytest.raises(EgressRefused, match="redirects"):
            async with stream(client, "GET", url):
                pass
    moved = await servers(lambda p, h: (302, {"Location": "file:///etc/passwd"}, b""))
    async with guarded_client(EgressPolicy.parse(LOOPBACK_ALLOWANCE), timeout=5) as client:
        with pytest.raises(EgressRefused, match="file"):
            async with stream(client, "GET", f"http://127.0.0.1:{moved.port}/"):
                pass


async def test_asyncio_connections_are_guarded_too(servers) -> None:
    recorder = await servers(ok)
    with pytest.raises(EgressRefused):
        await EgressPolicy().open_connection("127.0.0.1", recorder.port, connect_timeout_s=5)
    rebinding = EgressPolicy(resolver=answering("10.9.8.7"))
    with pytest.raises(EgressRefused):
        await rebinding.open_connection("api.example.com", recorder.port, connect_timeout_s=5)
    allowed = EgressPolicy.parse(LOOPBACK_ALLOWANCE, resolver=answering("127.0.0.1"))
    reader, writer = await allowed.open_connection(
        "sim.example.com", recorder.port, connect_timeout_s=5
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.read()).endswith(b"hello")
    writer.close()


def test_unix_sockets_and_proxies_are_not_a_way_around(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    client = guarded_client(EgressPolicy(), timeout=1)
    assert client._mounts == {}  # no proxy transport picked up from the environment
    assert isinstance(client, httpx.AsyncClient)
