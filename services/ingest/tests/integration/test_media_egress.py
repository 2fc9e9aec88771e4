"""Media downloads through the real egress guard (no mock transport): a webhook's media URL is
fetched from a server on loopback when the allowance names it, and refused, with the job failed
and nothing requested, when its name resolves into the private network or a redirect leads to
the metadata address. Names resolve through a resolver the test controls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio

from zapflow.ingest.app import Deps
from zapflow.runtime.egress import EgressPolicy
from zapflow.testing import unique

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
NAMES = {"cdn.zapi.test": "127.0.0.1", "internal.zapi.test": "10.0.0.5"}
paths_served: list[str] = []


async def resolver(host: str, port: int) -> Sequence[str]:
    return [NAMES[host]]


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    path = head.split(" ", 2)[1]
    paths_served.append(path)
    if path == "/redirect":
        answer = b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
        answer += b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    else:
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n"
        answer += b"Content-Length: %d\r\n\r\n%s" % (len(JPEG), JPEG)
    writer.write(answer)
    await writer.drain()
    writer.close()


@pytest_asyncio.fixture(scope="module")
async def media_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


@pytest_asyncio.fixture(scope="module")
async def ingest_deps() -> Deps:
    # only 127.0.0.1 is allowed, as `zapflow up` allows loopback; the guard itself stays on
    return Deps(egress=EgressPolicy.parse("127.0.0.1/32", resolver=resolver))


@pytest.fixture(autouse=True)
def vendor_calls_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift the providers' kill switch so the guard is what decides."""
    monkeypatch.setenv("ZF_ALLOW_PROVIDER_REQUESTS", "1")


async def zapi_image(ingest: Any, webhooks: Any, url: str) -> Any:
    body = json.loads(webhooks.wire_body("zapi", "inbound_image.json")[0])
    body["image"]["imageUrl"] = url
    tenant, channel = ingest.tenant(), unique("zapi")
    await ingest.send(tenant, channel, "zapi", json.dumps(body).encode())

    async def settled() -> bool:
        state = await ingest.db.fetchval(
            "SELECT j.state FROM media_jobs j JOIN messages m ON m.id = j.message_id"
            " WHERE m.channel_id = $1",
            channel,
        )
        return state in ("done", "failed")

    await ingest.wait_until(settled)
    return await ingest.db.fetchrow(
        "SELECT j.state, j.last_error, d.size_bytes FROM media_jobs j"
        " JOIN messages m ON m.id = j.message_id LEFT JOIN media d ON d.message_id = m.id"
        " WHERE m.channel_id = $1",
        channel,
    )


async def test_an_allowed_address_is_downloaded_through_the_guard(
    ingest: Any, webhooks: Any, media_port: int
) -> None:
    row = await zapi_image(ingest, webhooks, f"http://cdn.zapi.test:{media_port}/photo.jpeg")
    assert row["state"] == "done", row["last_error"]
    assert row["size_bytes"] == len(JPEG)
    assert "/photo.jpeg" in paths_served


async def test_a_name_resolving_into_the_private_network_fails_the_job(
    ingest: Any, webhooks: Any, media_port: int
) -> None:
    row = await zapi_image(ingest, webhooks, f"http://internal.zapi.test:{media_port}/secret")
    assert row["state"] == "failed"
    assert "refused outbound connection" in row["last_error"]
    assert "private" in row["last_error"]
    assert "/secret" not in paths_served


async def test_a_redirect_to_the_metadata_address_fails_the_job(
    ingest: Any, webhooks: Any, media_port: int
) -> None:
    row = await zapi_image(ingest, webhooks, f"http://127.0.0.1:{media_port}/redirect")
    assert row["state"] == "failed"
    assert "metadata" in row["last_error"]
