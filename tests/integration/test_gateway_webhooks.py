"""Provider webhooks through the real gateway service (in process), NATS and PostgreSQL.

Recorded payloads from ``shared/providers`` go in; what JetStream stored comes out. "Nothing
stored" is checked by counting the messages of the channel's subject in ``ZF_INBOUND``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import SecretStr

from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.queries import ERROR_HEADER
from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)
from zapflow.contracts.streams import ZF_INBOUND
from zapflow.embedded import free_port
from zapflow.gateway import channels, tenants
from zapflow.gateway.app import create_service
from zapflow.gateway.domain import Channel, webhook_secrets
from zapflow.gateway.envelope import malformed
from zapflow.gateway.schemas import ChannelCreate, ChannelPatch, PaceIn
from zapflow.gateway.settings import Settings
from zapflow.providers.errors import WebhookAuthError
from zapflow.providers.registry import get_adapter
from zapflow.providers.scrub import scrub_webhook
from zapflow.runtime.service import Service
from zapflow.testing import connect as connect_nats
from zapflow.testing import unique

pytestmark = pytest.mark.integration

MAX_BODY = 16 * 1024
FORM = "application/x-www-form-urlencoded"


@cache
def fixtures_root() -> Path:
    if override := os.environ.get("ZF_PROVIDER_FIXTURES"):
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "providers" / "meta").is_dir():
            return parent / "shared" / "providers"
    raise pytest.UsageError("shared/providers not found; set ZF_PROVIDER_FIXTURES")


def fixture(provider: str, name: str) -> bytes:
    return (fixtures_root() / provider / name).read_bytes()


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Gateway:
    service: Service
    client: httpx.AsyncClient
    tenant: str
    dsn: str
    js: JetStreamContext  # the test's own (admin) view of the streams

    async def channel(
        self, provider: str, secrets: dict[str, str] | None = None, tenant: str | None = None
    ) -> Channel:
        """A new channel, once the webhook cache has it."""
        request = ChannelCreate(
            id=unique(provider),
            provider=provider,
            pace=PaceIn(rate_per_second=10),
            secrets=secrets or {},
        )
        box = self.service.app.state.gateway.box  # type: ignore[union-attr]
        async with self.service.pool.acquire() as conn:
            created = await channels.register(conn, box, tenant or self.tenant, request)
        await self.cached(created.channel_id, present=True)
        return created

    async def cached(self, channel_id: str, *, present: bool = True, enabled: bool = True) -> None:
        cache_ = self.service.app.state.gateway.cache  # type: ignore[union-attr]
        for _ in range(200):
            entry = cache_.get(channel_id)
            if (entry is not None) == present and (entry is None or entry.enabled == enabled):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"cache never showed {channel_id} present={present}")

    async def stored(self, channel: Channel) -> int:
        subject = channel.inbound_subject
        info = await self.js.stream_info(ZF_INBOUND.name, subjects_filter=subject)
        return (info.state.subjects or {}).get(subject, 0)

    async def last_event(self, channel: Channel) -> tuple[WebhookReceived, dict[str, str]]:
        msg = await self.js.get_last_msg(ZF_INBOUND.name, channel.inbound_subject)
        return WebhookReceived.model_validate_json(msg.data), dict(msg.headers or {})


def gateway_settings(nats_url: str, dsn: str, **overrides: Any) -> Settings:
    return Settings(
        nats_url=nats_url,
        database_url=SecretStr(dsn),
        http_port=free_port(),
        shutdown_grace_s=3,
        webhook_max_body_bytes=MAX_BODY,
        gc_freeze=False,
        # the property test sends thousands of forged requests from one address
        webhook_failure_burst=overrides.pop("webhook_failure_burst", 1_000_000),
        **overrides,
    )


@pytest_asyncio.fixture(scope="module")
async def gw(nats_url: str, pg_dsn: str) -> AsyncIterator[Gateway]:
    service = create_service(gateway_settings(nats_url, pg_dsn))
    async with service.running():
        tenant = unique("t")
        async with service.pool.acquire() as conn:
            await tenants.create_tenant(conn, tenant, "Test tenant")
        base_url = f"http://127.0.0.1:{service.settings.http_port}"
        inspector = await connect_nats(nats_url)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            yield Gateway(service, client, tenant, pg_dsn, inspector.jetstream())
        await inspector.close()


async def post(
    gw: Gateway, channel: Channel, body: bytes, headers: dict[str, str], query: str = ""
) -> httpx.Response:
    url = f"/webhooks/{channel.provider}/{channel.channel_id}" + (f"?{query}" if query else "")
    return await gw.client.post(url, content=body, headers=headers)


async def assert_stored_once(
    gw: Gateway, channel: Channel, response: httpx.Response, body: bytes
) -> WebhookReceived:
    assert response.status_code == 200, response.text
    assert await gw.stored(channel) == 1
    event, headers = await gw.last_event(channel)
    assert base64.b64decode(event.body_b64) == body
    assert str(event.id) == response.json()["id"] == headers["Nats-Msg-Id"]
    assert (event.tenant_id, event.channel_id, event.provider) == (
        channel.tenant_id,
        channel.channel_id,
        channel.provider,
    )
    assert headers["Zf-Tenant"] == channel.tenant_id
    return event


# -- valid webhooks of every provider ----------------------------------------------------------


async def test_meta_inbound_message_signed_with_the_app_secret_is_stored(gw: Gateway) -> None:
    channel = await gw.channel("meta", {"app_secret": "meta-app-secret"})
    body = fixture("meta", "inbound_text.json")
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + sign("meta-app-secret", body),
        "Authorization": "Bearer should-never-be-kept",
    }
    event = await assert_stored_once(gw, channel, await post(gw, channel, body, headers), body)
    assert event.content_type == "application/json"
    assert event.headers == {}
    assert "should-never-be-kept" not in event.model_dump_json()


async def test_meta_signature_vector_from_the_fixtures(gw: Gateway) -> None:
    vector = json.loads(fixture("meta", "signature_example.json"))
    channel = await gw.channel("meta", {"app_secret": vector["app_secret"]})
    body = vector["raw_body"].encode()
    headers = {"Content-Type": "application/json", vector["header_name"]: vector["header_value"]}
    await assert_stored_once(gw, channel, await post(gw, channel, body, headers), body)


@pytest.mark.parametrize("mode", ["json_mode", "form_mode"])
async def test_wuzapi_hmac_signed_json_and_form(gw: Gateway, mode: str) -> None:
    vector = json.loads(fixture("wuzapi", "signature_example.json"))
    channel = await gw.channel("wuzapi", {"hmac_key": vector["hmac_key"]})
    body = vector[mode]["raw_body"].encode()
    headers = {
        "Content-Type": vector[mode]["content_type"],
        vector["header_name"]: vector[mode]["header_value"],
    }
    response = await post(gw, channel, body, headers, f"token={channel.webhook_token}")
    event = await assert_stored_once(gw, channel, response, body)
    assert event.content_type == vector[mode]["content_type"]
    assert event.query == {}  # the path token never travels


async def test_wuzapi_unsigned_form_with_the_path_token(gw: Gateway) -> None:
    channel = await gw.channel("wuzapi")
    body = urllib.parse.urlencode(json.loads(fixture("wuzapi", "inbound_text_form.json"))).encode()
    response = await post(
        gw, channel, body, {"Content-Type": FORM}, f"token={channel.webhook_token}"
    )
    await assert_stored_once(gw, channel, response, body)


async def test_evolution_with_path_token_and_apikey_header(gw: Gateway) -> None:
    channel = await gw.channel("evolution", {"webhook_api_key": "instance-token", "api_key": "g"})
    body = fixture("evolution", "inbound_text.json")
    headers = {"Content-Type": "application/json", "apikey": "instance-token"}
    query = f"token={channel.webhook_token}&source=messages-upsert"
    stored = scrub_webhook(body, "application/json")  # the envelope's apikey never stored
    assert stored != body
    event = await assert_stored_once(
        gw, channel, await post(gw, channel, body, headers, query), stored
    )
    assert event.query == {"source": "messages-upsert"}
    assert "instance-token" not in event.model_dump_json()


async def test_zapi_with_the_path_token(gw: Gateway) -> None:
    channel = await gw.channel("zapi", {"instance_token": "zt", "client_token": "ct"})
    body = fixture("zapi", "inbound_text.json")
    response = await post(
        gw, channel, body, {"Content-Type": "application/json"}, f"token={channel.webhook_token}"
    )
    await assert_stored_once(gw, channel, response, body)


# -- refused webhooks ---------------------------------------------------------------------------


async def test_forged_or_missing_signatures_are_401_and_nothing_is_stored(gw: Gateway) -> None:
    channel = await gw.channel("meta", {"app_secret": "right-secret"})
    body = fixture("meta", "status_read.json")
    forged = {"X-Hub-Signature-256": "sha256=" + sign("wrong-secret", body)}
    for headers, reason in [
        (forged, "signature mismatch"),
        ({}, "signature header missing"),
        ({"X-Hub-Signature-256": "md5=abc"}, "signature header missing"),
    ]:
        response = await post(gw, channel, body, {"Content-Type": "application/json", **headers})
        assert response.status_code == 401
        assert response.json() == {"error": reason}
    tampered = body.replace(b"read", b"sent")
    response = await post(
        gw, channel, tampered, {"X-Hub-Signature-256": "sha256=" + sign("right-secret", body)}
    )
    assert response.status_code == 401
    assert await gw.stored(channel) == 0


@pytest.mark.parametrize("provider", ["zapi", "evolution", "wuzapi"])
async def test_a_missing_or_wrong_path_token_is_401(gw: Gateway, provider: str) -> None:
    channel = await gw.channel(provider)
    body = fixture(provider, "inbound_text.json")
    for query in ["", "token=wrong", f"token={channel.webhook_token}x"]:
        response = await post(gw, channel, body, {"Content-Type": "application/json"}, query)
        assert response.status_code == 401, query
        assert response.json() == {"error": "path token missing or wrong"}
    assert await gw.stored(channel) == 0


async def test_evolution_wrong_apikey_is_401(gw: Gateway) -> None:
    channel = await gw.channel("evolution", {"webhook_api_key": "instance-token"})
    body = fixture("evolution", "status_read.json")
    response = await post(gw, channel, body, {"apikey": "nope"}, f"token={channel.webhook_token}")
    assert response.status_code == 401
    assert await gw.stored(channel) == 0


async def test_authenticated_but_malformed_bodies_are_400_with_a_reason(gw: Gateway) -> None:
    meta = await gw.channel("meta", {"app_secret": "s"})
    for body, reason in [
        (b"<xml/>", "body is not valid JSON"),
        (b'{"object": "page", "entry": []}', "not a whatsapp_business_account envelope"),
    ]:
        response = await post(gw, meta, body, {"X-Hub-Signature-256": "sha256=" + sign("s", body)})
        assert (response.status_code, response.json()) == (400, {"error": reason})
    zapi = await gw.channel("zapi")
    response = await post(gw, zapi, b"[]", {}, f"token={zapi.webhook_token}")
    assert (response.status_code, response.json()) == (400, {"error": "body is not a JSON object"})
    wuzapi = await gw.channel("wuzapi")
    response = await post(
        gw, wuzapi, b"userID=1", {"Content-Type": FORM}, f"token={wuzapi.webhook_token}"
    )
    assert (response.status_code, response.json()) == (
        400,
        {"error": "form without jsonData field"},
    )
    assert await gw.stored(meta) + await gw.stored(zapi) + await gw.stored(wuzapi) == 0


async def test_unknown_channels_wrong_providers_and_disabled_channels_are_404(gw: Gateway) -> None:
    response = await gw.client.post("/webhooks/meta/no-such-channel", content=b"{}")
    assert (response.status_code, response.json()) == (404, {"error": "unknown channel"})
    channel = await gw.channel("meta", {"app_secret": "s"})
    body = fixture("meta", "inbound_text.json")
    signed = {"X-Hub-Signature-256": "sha256=" + sign("s", body)}
    wrong_provider = await gw.client.post(f"/webhooks/zapi/{channel.channel_id}", content=body)
    assert wrong_provider.status_code == 404
    async with gw.service.pool.acquire() as conn:
        await channels.set_enabled(conn, gw.tenant, channel.channel_id, enabled=False)
    await gw.cached(channel.channel_id, enabled=False)
    assert (await post(gw, channel, body, signed)).status_code == 404
    async with gw.service.pool.acquire() as conn:
        await channels.set_enabled(conn, gw.tenant, channel.channel_id, enabled=True)
    await gw.cached(channel.channel_id, enabled=True)
    assert (await post(gw, channel, body, signed)).status_code == 200
    assert await gw.stored(channel) == 1


async def test_bodies_over_the_limit_are_413_declared_or_streamed(gw: Gateway) -> None:
    channel = await gw.channel("meta", {"app_secret": "s"})
    big = b'{"object": "whatsapp_business_account", "entry": [], "pad": "' + b"x" * MAX_BODY + b'"}'
    signed = {"X-Hub-Signature-256": "sha256=" + sign("s", big)}
    response = await post(gw, channel, big, signed)
    assert (response.status_code, response.json()) == (413, {"error": "body too large"})

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked transfer
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = await gw.client.post(
        f"/webhooks/meta/{channel.channel_id}", content=chunks(), headers=signed
    )
    assert streamed.status_code == 413
    assert await gw.stored(channel) == 0


async def test_a_flooded_channel_gets_429_with_retry_after(gw: Gateway, nats_url: str) -> None:
    flood = create_service(
        gateway_settings(nats_url, gw.dsn, webhook_burst=2, webhook_rate_per_s=0.01)
    )
    channel = await gw.channel("meta", {"app_secret": "s"})
    body = fixture("meta", "status_sent.json")
    signed = {"X-Hub-Signature-256": "sha256=" + sign("s", body)}
    async with flood.running():
        url = f"http://127.0.0.1:{flood.settings.http_port}/webhooks/meta/{channel.channel_id}"
        async with httpx.AsyncClient() as client:
            statuses = [(await client.post(url, content=body, headers=signed)) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert int(statuses[2].headers["retry-after"]) >= 1
    assert await gw.stored(channel) == 2


# -- Meta's subscription handshake ---------------------------------------------------------------


async def test_meta_handshake_echoes_the_challenge_only_for_the_right_token(gw: Gateway) -> None:
    vector = json.loads(fixture("meta", "verification_handshake.json"))
    channel = await gw.channel(
        "meta", {"app_secret": "s", "verify_token": vector["configured_verify_token"]}
    )
    url = f"/webhooks/meta/{channel.channel_id}"
    ok = await gw.client.get(url, params=vector["request"]["query"])
    assert (ok.status_code, ok.text) == (200, vector["expected_response"]["body"])
    assert ok.headers["content-type"].startswith("text/plain")
    wrong = {**vector["request"]["query"], "hub.verify_token": "nope"}
    forbidden = await gw.client.get(url, params=wrong)
    assert forbidden.status_code == vector["on_token_mismatch"]["status"]
    assert forbidden.json() == {"error": "verify token mismatch"}
    no_token = await gw.channel("meta", {"app_secret": "s"})
    refused = await gw.client.get(
        f"/webhooks/meta/{no_token.channel_id}", params=vector["request"]["query"]
    )
    assert refused.status_code == 403
    unknown = await gw.client.get("/webhooks/meta/nope", params=vector["request"]["query"])
    assert unknown.status_code == 404


# -- the credentials responder -------------------------------------------------------------------


async def test_credentials_are_answered_decrypted_and_only_to_their_tenant(
    gw: Gateway, nc: NATS
) -> None:
    channel = await gw.channel(
        "zapi", {"instance_token": "zt", "client_token": "ct", "webhook_client_token": "w"}
    )
    async with gw.service.pool.acquire() as conn:
        await channels.update(
            conn,
            gw.service.app.state.gateway.box,  # type: ignore[union-attr]
            gw.tenant,
            channel.channel_id,
            ChannelPatch(provider_account="3D9F0A1B", base_url="http://127.0.0.1:9"),
        )

    async def ask(payload: bytes) -> ChannelCredentialsReply:
        subject = CHANNEL_CREDENTIALS.subject_for("sender")
        reply = await nc.request(subject, payload, timeout=5)
        assert not (reply.headers or {}).get(ERROR_HEADER), reply.data
        return ChannelCredentialsReply.model_validate_json(reply.data)

    mine = ChannelCredentialsRequest(tenant_id=gw.tenant, channel_id=channel.channel_id)
    reply = await ask(mine.model_dump_json().encode())
    assert reply.found
    assert reply.provider == "zapi"
    assert reply.base_url == "http://127.0.0.1:9"
    assert reply.credentials == {
        "instance_token": "zt",
        "client_token": "ct",
        "instance_id": "3D9F0A1B",
    }
    other = ChannelCredentialsRequest(tenant_id=unique("other"), channel_id=channel.channel_id)
    assert not (await ask(other.model_dump_json().encode())).found
    refused = await nc.request(CHANNEL_CREDENTIALS.subject_for("sender"), b"not a request")
    assert refused.headers is not None
    assert refused.headers[ERROR_HEADER] == "bad_request"


# -- property: whatever comes in, never a 5xx; valid webhooks are stored --------------------------

SECRETS = {
    "meta": {"app_secret": "prop-meta"},
    "evolution": {"webhook_api_key": "prop-evo"},
    "zapi": {},
    "wuzapi": {"hmac_key": "prop-wuz"},
}
SEEDS = {
    "meta": ["inbound_text.json", "status_failed.json"],
    "evolution": ["inbound_text.json", "status_read.json"],
    "zapi": ["inbound_text.json", "status_read.json"],
    "wuzapi": ["inbound_text.json", "status_read.json"],
}


@pytest_asyncio.fixture(scope="module")
async def property_channels(gw: Gateway) -> dict[str, Channel]:
    return {p: await gw.channel(p, SECRETS[p]) for p in SECRETS}


def _mutate(doc: Any, path: list[int], value: Any) -> Any:
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[path[0] % len(keys)]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[key] = _mutate(doc[key], path[1:], value)  # type: ignore[index]
    return copy


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda n: n not in {"content-length", "transfer-encoding", "host", "connection", "expect", "te"}
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20
).map(str.strip)  # h11 refuses values with surrounding whitespace


def _expected(channel: Channel, body: bytes, headers: dict[str, str], query: dict[str, str]) -> int:
    secrets = webhook_secrets(channel.provider, SECRETS[channel.provider], channel.webhook_token)
    try:
        get_adapter(channel.provider).verify_webhook(headers, body, query, secrets)
    except WebhookAuthError:
        return 401
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    return 400 if malformed(channel.provider, body, content_type) else 200


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    provider=st.sampled_from(sorted(SECRETS)),
    seed=st.integers(0, 1),
    mutation=st.one_of(st.none(), st.tuples(st.lists(st.integers(0, 20), max_size=4), json_leaf)),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
    auth=st.sampled_from(["valid", "forged", "missing"]),
    with_token=st.booleans(),
    content_type=st.sampled_from(["application/json", FORM, "text/plain", None]),
    extra_headers=st.dictionaries(header_names, header_values, max_size=3),
)
async def test_random_and_mutated_webhooks_never_5xx_and_valid_ones_are_stored(
    gw: Gateway,
    property_channels: dict[str, Channel],
    provider: str,
    seed: int,
    mutation: tuple[list[int], Any] | None,
    raw: bytes | None,
    auth: str,
    with_token: bool,
    content_type: str | None,
    extra_headers: dict[str, str],
) -> None:
    channel = property_channels[provider]
    if raw is not None:
        body = raw
    else:
        doc = json.loads(fixture(provider, SEEDS[provider][seed]))
        if mutation is not None:
            doc = _mutate(doc, *mutation)
        body = json.dumps(doc).encode()
    headers = dict(extra_headers)
    if content_type is not None:
        headers["content-type"] = content_type
    key = {"meta": "prop-meta", "wuzapi": "prop-wuz"}.get(provider)
    if key is not None and auth != "missing":
        digest = sign(key if auth == "valid" else "forged", body)
        if provider == "meta":
            headers["x-hub-signature-256"] = "sha256=" + digest
        else:
            headers["x-hmac-signature"] = digest
    if provider == "evolution" and auth != "missing":
        headers["apikey"] = "prop-evo" if auth == "valid" else "forged"
    query = {"token": channel.webhook_token} if with_token else {}
    expected = _expected(channel, body, headers, query)

    before = await gw.stored(channel)
    response = await post(gw, channel, body, headers, urllib.parse.urlencode(query))
    after = await gw.stored(channel)

    event(f"{provider} answered {response.status_code}")
    assert response.status_code < 500, response.text
    assert response.status_code == expected, (response.status_code, response.text)
    if expected == 200:
        assert after == before + 1
        stored, _ = await gw.last_event(channel)
        content_type = headers.get("Content-Type", "application/json")
        assert base64.b64decode(stored.body_b64) == scrub_webhook(body, content_type)
    else:
        assert after == before
        assert "error" in response.json()
