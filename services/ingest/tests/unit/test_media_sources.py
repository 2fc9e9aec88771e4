"""Where media bytes come from: inline base64, Meta's two-step download, URLs, Evolution."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.contracts.model import Media
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.ingest.adapters.pg_media import MediaJob
from zapflow.ingest.media.sources import MediaFetcher, MediaUnavailable, encrypted_cdn, inline_media
from zapflow.runtime.egress import EgressPolicy, guarded_client

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 64
B64 = base64.b64encode(PNG).decode()


def evolution_body(message_id: str, b64: str | None) -> bytes:
    message: dict[str, Any] = {"imageMessage": {"mimetype": "image/png"}}
    if b64 is not None:
        message["base64"] = b64
    return json.dumps(
        {"event": "messages.upsert", "data": {"key": {"id": message_id}, "message": message}}
    ).encode()


def test_inline_media_of_evolution_matches_the_message_id() -> None:
    assert inline_media("evolution", evolution_body("A1", B64), "application/json", "A1") == PNG
    assert inline_media("evolution", evolution_body("A1", B64), None, "OTHER") is None
    assert inline_media("evolution", evolution_body("A1", None), None, "A1") is None
    assert inline_media("evolution", b"not json", None, "A1") is None


def test_inline_media_of_wuzapi_in_json_and_form_bodies() -> None:
    doc = {
        "type": "Message",
        "base64": f"data:image/png;base64,{B64}",
        "event": {"Info": {"ID": "W1"}},
    }
    assert inline_media("wuzapi", json.dumps(doc).encode(), "application/json", "W1") == PNG
    form = urllib.parse.urlencode({"jsonData": json.dumps(doc), "userID": "1"}).encode()
    assert inline_media("wuzapi", form, "application/x-www-form-urlencoded", "W1") == PNG
    assert inline_media("wuzapi", form, "application/x-www-form-urlencoded", "W2") is None
    assert inline_media("meta", json.dumps(doc).encode(), None, "W1") is None


def test_whatsapp_cdn_urls_are_recognized_as_encrypted() -> None:
    assert encrypted_cdn("https://mmg.whatsapp.net/v/t62/abc.enc?ccb=1")
    assert not encrypted_cdn("https://storage.z-api.io/instances/x/y.jpeg")
    assert not encrypted_cdn("https://notwhatsapp.net/x")


def job(provider: str, media: Media, **extra: Any) -> MediaJob:
    fields: dict[str, Any] = {
        "message_id": uuid4(),
        "tenant_id": "acme",
        "channel_id": "ch-1",
        "provider": provider,
        "provider_message_id": "P1",
        "source_event_id": uuid4(),
        "media": media,
        "attempts": 1,
    }
    fields.update(extra)
    return MediaJob(**fields)


async def creds(tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
    return ChannelCredentialsReply(
        found=True, base_url="http://127.0.0.1:1/v21.0", credentials={"access_token": "tok"}
    )


async def no_raw(_: Any) -> None:
    return None


def fetcher(handler: Any, max_bytes: int = 10_000) -> MediaFetcher:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MediaFetcher(client, creds, no_raw, max_bytes=max_bytes)


async def test_meta_media_id_resolves_to_a_url_fetched_with_the_token() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        assert request.headers["authorization"] == "Bearer tok"
        if request.url.path == "/v21.0/123":
            return httpx.Response(
                200, json={"url": "http://127.0.0.1:1/cdn/123", "mime_type": "image/png"}
            )
        return httpx.Response(
            200, content=PNG, headers={"content-type": "application/octet-stream"}
        )

    got = await fetcher(handler).fetch(job("meta", Media(provider_media_id="123")))
    assert (got.data, got.mime_type) == (PNG, "image/png")
    assert calls == ["http://127.0.0.1:1/v21.0/123", "http://127.0.0.1:1/cdn/123"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, MediaUnavailable),
        (400, MediaUnavailable),
        (500, TransientError),
        (429, TransientError),
        (401, TransientError),
    ],
)
async def test_http_failures_are_classified(status: int, error: type[Exception]) -> None:
    f = fetcher(lambda _: httpx.Response(status))
    with pytest.raises(error):
        await f.fetch(job("zapi", Media(url="http://127.0.0.1:1/x.jpeg")))


async def test_timeouts_are_transient_and_oversize_is_permanent() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(TransientError):
        await fetcher(slow).fetch(job("zapi", Media(url="http://127.0.0.1:1/x.jpeg")))
    big = fetcher(lambda _: httpx.Response(200, content=b"x" * 100), max_bytes=10)
    with pytest.raises(MediaUnavailable, match="larger"):
        await big.fetch(job("zapi", Media(url="http://127.0.0.1:1/x.jpeg")))


async def test_non_loopback_hosts_are_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ZF_ALLOW_PROVIDER_REQUESTS", raising=False)
    f = fetcher(lambda _: httpx.Response(200, content=PNG))
    with pytest.raises(PermanentError):
        await f.fetch(job("zapi", Media(url="https://storage.z-api.io/x.jpeg")))
    monkeypatch.setenv("ZF_ALLOW_PROVIDER_REQUESTS", "1")
    assert (await f.fetch(job("zapi", Media(url="https://storage.z-api.io/x.jpeg")))).data == PNG


@pytest.mark.parametrize(
    ("url", "with_token"),
    [
        ("http://127.0.0.1:1/cdn/123", True),  # the channel's own base URL origin
        ("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1", True),
        ("https://scontent.xx.fbcdn.net/v/t1/1.jpg", True),
        ("http://lookaside.fbsbx.com/x", False),  # Meta's host, but not over TLS
        ("https://attacker.example/steal", False),
        ("https://fbsbx.com.attacker.example/x", False),
        ("http://127.0.0.1:2/cdn/123", False),  # another port: another origin
    ],
)
async def test_the_meta_token_goes_only_to_meta_or_the_channel_itself(
    monkeypatch: pytest.MonkeyPatch, url: str, with_token: bool
) -> None:
    """The lookup answer names where the bytes are; the channel's token follows only to Meta's
    own hosts or the channel's base URL, never to a host a lookup answer (a tenant-set base
    URL) makes up."""
    monkeypatch.setenv("ZF_ALLOW_PROVIDER_REQUESTS", "1")
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v21.0/123":
            return httpx.Response(200, json={"url": url, "mime_type": "image/png"})
        seen[str(request.url)] = request.headers.get("authorization")
        return httpx.Response(200, content=PNG)

    await fetcher(handler).fetch(job("meta", Media(provider_media_id="123")))
    assert seen == {url: "Bearer tok" if with_token else None}


async def test_redirects_drop_credentials_across_origins_and_posts_do_not_follow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZF_ALLOW_PROVIDER_REQUESTS", "1")
    headers: dict[str, dict[str, str]] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        headers[request.url.path] = dict(request.headers)
        if request.url.path == "/v21.0/123":
            return httpx.Response(200, json={"url": "http://127.0.0.1:1/cdn/1"})
        if request.url.path == "/cdn/1":
            return httpx.Response(302, headers={"location": "https://files.example/f.png"})
        return httpx.Response(200, content=PNG)

    got = await fetcher(handler).fetch(job("meta", Media(provider_media_id="123")))
    assert got.data == PNG
    assert headers["/cdn/1"]["authorization"] == "Bearer tok"
    assert "authorization" not in headers["/f.png"]

    async def evolution(tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        return ChannelCredentialsReply(
            found=True,
            base_url="http://127.0.0.1:1",
            credentials={"api_key": "evo-key", "instance": "i"},
        )

    posted: list[str] = []

    def moved(request: httpx.Request) -> httpx.Response:
        posted.append(str(request.url))
        return httpx.Response(307, headers={"location": "https://elsewhere.example/"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(moved))
    evo = MediaFetcher(client, evolution, no_raw, max_bytes=10_000)
    with pytest.raises(MediaUnavailable, match="HTTP 307"):  # the POST and its key stay home
        await evo.fetch(job("evolution", Media()))
    assert posted == ["http://127.0.0.1:1/chat/getBase64FromMediaMessage/i"]


async def test_the_whole_download_has_a_deadline() -> None:
    async def stalled(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=PNG)

    client = httpx.AsyncClient(transport=httpx.MockTransport(stalled))
    slow = MediaFetcher(client, creds, no_raw, max_bytes=10_000, deadline_s=0.1)
    with pytest.raises(TransientError, match="too long"):
        await slow.fetch(job("zapi", Media(url="http://127.0.0.1:1/x.jpeg")))


@pytest.mark.parametrize("address", ["10.0.0.9", "169.254.169.254", "127.0.0.1", "fd00:ec2::254"])
async def test_a_media_url_resolving_to_a_forbidden_address_fails_the_job(
    monkeypatch: pytest.MonkeyPatch, address: str
) -> None:
    """Through the real guarded client: a payload's media URL whose name resolves into the
    private network is refused before connecting, permanently."""
    monkeypatch.setenv("ZF_ALLOW_PROVIDER_REQUESTS", "1")

    async def resolver(host: str, port: int) -> list[str]:
        return [address]

    client = guarded_client(EgressPolicy(resolver=resolver), timeout=2)
    f = MediaFetcher(client, creds, no_raw, max_bytes=10_000)
    with pytest.raises(PermanentError) as refused:
        await f.fetch(job("zapi", Media(url="https://storage.z-api.example/x.jpeg")))
    assert refused.value.code == "egress_refused"
    await client.aclose()


async def test_no_source_is_permanent() -> None:
    f = fetcher(lambda _: httpx.Response(500))
    encrypted = Media(url="https://mmg.whatsapp.net/v/x.enc")
    with pytest.raises(MediaUnavailable, match="no downloadable source"):
        await f.fetch(job("wuzapi", encrypted))


def test_jobs_carry_their_time_independent_fields() -> None:
    assert job("meta", Media()).attempts == 1
    assert datetime.now(UTC).tzinfo is not None
