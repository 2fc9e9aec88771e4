"""Media persistence off the ack path: provider downloads (through a mock transport) into the
filesystem store, the ``media`` rows, the message's ``stored_key``, and chunked reads over NATS."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest

from zapflow.contracts.queries import ingest_v1 as q
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.ingest.app import Deps
from zapflow.testing import unique

pytestmark = pytest.mark.integration

BASE = "http://127.0.0.1:9"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
BIG = bytes(range(256)) * 2800  # ~700 KiB: two chunks of the media query
UNKNOWN_CHANNEL = "ch-unknown"
requests_seen: list[httpx.Request] = []


def provider(request: httpx.Request) -> httpx.Response:
    requests_seen.append(request)
    path = request.url.path
    if path.startswith("/graph/v21.0/"):
        assert request.headers["authorization"] == "Bearer meta-token"
        media_id = path.rsplit("/", 1)[-1]
        if media_id == "503":
            return httpx.Response(503)
        return httpx.Response(
            200, json={"url": f"{BASE}/lookaside/{media_id}", "mime_type": "image/jpeg"}
        )
    if path.startswith("/lookaside/"):
        assert request.headers["authorization"] == "Bearer meta-token"
        return httpx.Response(
            200,
            content=BIG if path.endswith("big") else JPEG,
            headers={"content-type": "image/jpeg"},
        )
    if path == "/zapi/photo.jpeg":
        return httpx.Response(200, content=JPEG, headers={"content-type": "image/jpeg"})
    if path == "/evo/chat/getBase64FromMediaMessage/loja":
        assert request.headers["apikey"] == "evo-key"
        assert json.loads(request.content)["message"]["key"]["id"] == "EVOFETCH1"
        return httpx.Response(
            200, json={"base64": base64.b64encode(JPEG).decode(), "mimetype": "image/jpeg"}
        )
    return httpx.Response(404)


async def credentials(tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
    if channel_id == UNKNOWN_CHANNEL:
        return ChannelCredentialsReply(found=False)
    return ChannelCredentialsReply(
        found=True,
        base_url=f"{BASE}/graph/v21.0" if channel_id.startswith("meta") else f"{BASE}/evo",
        provider_account="loja",
        credentials={"access_token": "meta-token", "api_key": "evo-key"},
    )


@pytest.fixture(scope="module")
def ingest_deps() -> Deps:
    return Deps(http_transport=httpx.MockTransport(provider), credentials=credentials)


async def job_state(ingest: Any, channel: str) -> Any:
    async def settled() -> bool:
        state = await ingest.db.fetchval(
            "SELECT j.state FROM media_jobs j JOIN messages m ON m.id = j.message_id"
            " WHERE m.channel_id = $1",
            channel,
        )
        return state in ("done", "failed")

    await ingest.wait_until(settled)
    return await ingest.db.fetchrow(
        "SELECT j.state, j.last_error, j.attempts, m.id, m.media::text AS media, d.key,"
        " d.size_bytes, d.sha256, d.mime_type"
        " FROM media_jobs j JOIN messages m ON m.id = j.message_id"
        " LEFT JOIN media d ON d.message_id = m.id WHERE m.channel_id = $1",
        channel,
    )


def meta_image(webhooks: Any, media_id: str) -> bytes:
    body = json.loads(webhooks.wire_body("meta", "inbound_image.json")[0])
    body["entry"][0]["changes"][0]["value"]["messages"][0]["image"]["id"] = media_id
    return json.dumps(body).encode()


async def test_meta_media_is_fetched_by_id_with_the_channel_token(
    ingest: Any, webhooks: Any
) -> None:
    tenant, channel = ingest.tenant(), unique("meta")
    await ingest.send(tenant, channel, "meta", meta_image(webhooks, "1481920374659201"))
    row = await job_state(ingest, channel)
    assert row["state"] == "done", row["last_error"]
    assert (row["size_bytes"], row["sha256"]) == (len(JPEG), hashlib.sha256(JPEG).hexdigest())
    assert row["key"] == f"{tenant}/{row['id']}"
    assert json.loads(row["media"])["stored_key"] == row["key"]
    stored = ingest.service.settings.media_dir / row["key"]
    assert stored.read_bytes() == JPEG


async def test_inline_base64_of_evolution_and_wuzapi_needs_no_download(
    ingest: Any, webhooks: Any
) -> None:
    body = json.loads(webhooks.wire_body("evolution", "inbound_image.json")[0])
    body["data"]["message"]["base64"] = base64.b64encode(JPEG).decode()
    wuz, _ = webhooks.wire_body("wuzapi", "inbound_image.json")
    wuz_bytes = base64.b64decode(json.loads(wuz)["base64"])
    before = len(requests_seen)
    for provider_name, payload, expected in (
        ("evolution", json.dumps(body).encode(), JPEG),
        ("wuzapi", wuz, wuz_bytes),
    ):
        tenant, channel = ingest.tenant(), unique("ch")
        await ingest.send(tenant, channel, provider_name, payload)
        row = await job_state(ingest, channel)
        assert row["state"] == "done", row["last_error"]
        assert (ingest.service.settings.media_dir / row["key"]).read_bytes() == expected
    assert len(requests_seen) == before


async def test_url_and_evolution_fallback_sources(ingest: Any, webhooks: Any) -> None:
    zapi = json.loads(webhooks.wire_body("zapi", "inbound_image.json")[0])
    zapi["image"]["imageUrl"] = f"{BASE}/zapi/photo.jpeg"
    evo = json.loads(webhooks.wire_body("evolution", "inbound_image.json")[0])
    evo["data"]["key"]["id"] = "EVOFETCH1"  # no inline base64, only an encrypted CDN url
    for provider_name, payload in (("zapi", zapi), ("evolution", evo)):
        tenant, channel = ingest.tenant(), unique("ch")
        await ingest.send(tenant, channel, provider_name, json.dumps(payload).encode())
        row = await job_state(ingest, channel)
        assert row["state"] == "done", (provider_name, row["last_error"])
        assert row["size_bytes"] == len(JPEG)


async def test_unknown_channel_fails_the_job_and_provider_errors_retry_later(
    ingest: Any, webhooks: Any
) -> None:
    tenant = ingest.tenant()
    await ingest.send(tenant, UNKNOWN_CHANNEL, "meta", meta_image(webhooks, "777"))
    row = await job_state(ingest, UNKNOWN_CHANNEL)
    assert (row["state"], row["last_error"]) == ("failed", "channel not found")

    channel = unique("meta")
    await ingest.send(tenant, channel, "meta", meta_image(webhooks, "503"))

    async def retried() -> bool:
        attempts = await ingest.db.fetchval(
            "SELECT attempts FROM media_jobs j JOIN messages m ON m.id = j.message_id"
            " WHERE m.channel_id = $1 AND j.last_error IS NOT NULL",
            channel,
        )
        return bool(attempts)

    await ingest.wait_until(retried)
    job = await ingest.db.fetchrow(
        "SELECT state, attempts, last_error, next_attempt_at > now() AS later FROM media_jobs j"
        " JOIN messages m ON m.id = j.message_id WHERE m.channel_id = $1",
        channel,
    )
    assert (job["state"], job["attempts"], job["later"]) == ("pending", 1, True)
    assert "503" in job["last_error"]


async def test_media_query_returns_the_bytes_in_chunks(ingest: Any, webhooks: Any) -> None:
    tenant, channel = ingest.tenant(), unique("meta")
    await ingest.send(tenant, channel, "meta", meta_image(webhooks, "big"))
    row = await job_state(ingest, channel)
    assert row["state"] == "done", row["last_error"]

    data = b""
    offset, chunks = 0, 0
    while True:
        request = q.GetMediaRequest(tenant_id=tenant, message_id=row["id"], offset=offset)
        msg = await ingest.nc.request(
            q.GET_MEDIA.subject_for("gateway"), request.model_dump_json().encode(), timeout=5
        )
        chunk = q.MediaChunk.model_validate_json(msg.data)
        assert chunk.state == "stored"
        assert chunk.media is not None
        assert chunk.media.mime_type == "image/jpeg"
        data += base64.b64decode(chunk.data_b64)
        offset, chunks = len(data), chunks + 1
        if chunk.eof:
            break
    assert (data, chunks) == (BIG, 2)
    foreign = q.GetMediaRequest(tenant_id=ingest.tenant(), message_id=row["id"])
    msg = await ingest.nc.request(
        q.GET_MEDIA.subject_for("gateway"), foreign.model_dump_json().encode(), timeout=5
    )
    assert q.MediaChunk.model_validate_json(msg.data).state == "none"
