"""API keys: every route's scope, the development key, the failed-authentication limit, the
development secrets key, and how media files are served.

The routes run on the real app with the real authentication over a fake key table (the one
query authentication makes), so 401/403/429 are decided exactly as in production.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute
from pydantic import SecretStr, ValidationError

from zapflow.contracts.queries import ingest_v1 as q
from zapflow.gateway import admin_api, compliance_api, keys_api, read_api, scopes, send_api
from zapflow.gateway.api import build_app
from zapflow.gateway.auth import DEV_KEY_REFUSED, Principal, current_tenant
from zapflow.gateway.authlimit import AuthLimits, FailedAuthLimiter, client_group
from zapflow.gateway.crypto import new_key
from zapflow.gateway.read_api import attachment, served_type
from zapflow.gateway.settings import DEV_SECRETS_KEY, Settings
from zapflow.gateway.tenants import DEMO_API_KEY, hash_key

from .conftest import FakeNats, MemoryCommandLog

ID = str(uuid4())
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/v1/conversations"): scopes.MESSAGES_READ,
    ("GET", "/v1/conversations/{conversation_id}"): scopes.MESSAGES_READ,
    ("GET", "/v1/conversations/{conversation_id}/messages"): scopes.MESSAGES_READ,
    ("GET", "/v1/contacts/{contact_id}"): scopes.MESSAGES_READ,
    ("GET", "/v1/contacts"): scopes.MESSAGES_READ,
    ("GET", "/v1/messages/search"): scopes.MESSAGES_READ,
    ("GET", "/v1/media/{message_id}"): scopes.MESSAGES_READ,
    ("GET", "/v1/messages/{message_id}/decision"): scopes.MESSAGES_READ,
    ("POST", "/v1/messages"): scopes.MESSAGES_SEND,
    ("POST", "/v1/conversations/{conversation_id}/messages"): scopes.MESSAGES_SEND,
    ("GET", "/v1/compliance/rules"): scopes.COMPLIANCE_READ,
    ("GET", "/v1/contacts/consent"): scopes.COMPLIANCE_READ,
    ("PUT", "/v1/compliance/rules"): scopes.COMPLIANCE_WRITE,
    ("POST", "/v1/consent/opt-out"): scopes.CONSENT_WRITE,
    ("POST", "/v1/consent/opt-in"): scopes.CONSENT_WRITE,
    ("GET", "/v1/channels"): scopes.CHANNELS_READ,
    ("GET", "/v1/channels/{channel_id}"): scopes.CHANNELS_READ,
    ("POST", "/v1/channels"): scopes.CHANNELS_WRITE,
    ("PATCH", "/v1/channels/{channel_id}"): scopes.CHANNELS_WRITE,
    ("POST", "/v1/channels/{channel_id}/disable"): scopes.CHANNELS_WRITE,
    ("POST", "/v1/channels/{channel_id}/enable"): scopes.CHANNELS_WRITE,
    ("GET", "/v1/api-keys"): scopes.KEYS_ADMIN,
    ("POST", "/v1/api-keys"): scopes.KEYS_ADMIN,
    ("POST", "/v1/api-keys/{key_id}/revoke"): scopes.KEYS_ADMIN,
}
"""The documented table (``zapflow.gateway.scopes``): every /v1 route and its one scope."""


def concrete(path: str) -> str:
    return (
        path.replace("{conversation_id}", ID)
        .replace("{contact_id}", ID)
        .replace("{message_id}", ID)
        .replace("{key_id}", ID)
        .replace("{channel_id}", "ch-1")
    )


class FakeKeys:
    """The ``api_keys`` table as authentication reads it (by SHA-256); counts lookups."""

    def __init__(self) -> None:
        self.rows: dict[bytes, dict[str, Any]] = {}
        self.lookups = 0

    def add(self, key: str, tenant: str, *granted: str, revoked: bool = False) -> str:
        self.rows[hash_key(key)] = {
            "id": uuid4(),
            "tenant_id": tenant,
            "scopes": list(granted),
            "revoked_at": datetime.now(UTC) if revoked else None,
        }
        return key

    async def fetchrow(self, _sql: str, digest: bytes) -> dict[str, Any] | None:
        self.lookups += 1
        return self.rows.get(digest)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def app_for(keys: FakeKeys, *, development: bool = False, clock: Clock | None = None) -> Any:
    limiter = FailedAuthLimiter(AuthLimits(), clock or Clock())
    settings = SimpleNamespace(api_max_body_bytes=4096, development=development)
    nats = FakeNats()
    nats.answers[q.LIST_CONVERSATIONS] = lambda _: q.ConversationsPage(items=[])
    gateway = SimpleNamespace(settings=settings, commands=MemoryCommandLog(), auth_limiter=limiter)
    return build_app(SimpleNamespace(nc=nats, pool=keys), gateway)


def client(app: Any, address: str = "203.0.113.5") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://gw")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- scopes ------------------------------------------------------------------------------------


async def test_every_route_requires_exactly_the_documented_scope() -> None:
    found: dict[tuple[str, str], str] = {}
    for module in (admin_api, keys_api, compliance_api, send_api, read_api):
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            required = [
                d.call.scope for d in route.dependant.dependencies if hasattr(d.call, "scope")
            ]
            for method in route.methods:
                assert len(required) == 1, (method, route.path, required)
                found[(method, route.path)] = required[0]
    assert found == ROUTES
    assert set(ROUTES.values()) | {scopes.ADMIN} == set(scopes.SCOPES)
    # and the app serves exactly these /v1 routes, no other
    async with client(app_for(FakeKeys())) as api:
        document = (await api.get("/openapi.json")).json()
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/v1")
        for method in operations
    }
    assert served == set(ROUTES)


@pytest.mark.parametrize(("route", "scope"), ROUTES.items(), ids=[" ".join(r) for r in ROUTES])
async def test_a_key_lacking_the_route_scope_gets_403(route: tuple[str, str], scope: str) -> None:
    app = app_for(FakeKeys())
    others = frozenset(scopes.SCOPES) - {scope, scopes.ADMIN}
    app.dependency_overrides[current_tenant] = lambda: Principal("acme", "k", others)
    method, path = route
    async with client(app) as api:
        answer = await api.request(method, concrete(path), json={})
    assert (answer.status_code, answer.json()) == (403, {"error": f"API key lacks scope {scope}"})


async def test_a_send_key_cannot_touch_channels_rules_consent_or_keys() -> None:
    keys = FakeKeys()
    sender = keys.add("zf_sender00_" + "s" * 32, "acme", scopes.MESSAGES_SEND)
    async with client(app_for(keys)) as api:
        for method, path in (
            ("POST", "/v1/channels"),
            ("PATCH", "/v1/channels/ch-1"),
            ("POST", "/v1/channels/ch-1/disable"),
            ("PUT", "/v1/compliance/rules"),
            ("POST", "/v1/consent/opt-out"),
            ("POST", "/v1/api-keys"),
        ):
            answer = await api.request(method, path, json={}, headers=bearer(sender))
            assert answer.status_code == 403, (method, path, answer.text)


# -- the development key ------------------------------------------------------------------------


async def test_the_demo_key_is_refused_outside_development_even_when_stored() -> None:
    keys = FakeKeys()
    keys.add(DEMO_API_KEY, "demo", scopes.ADMIN)
    async with client(app_for(keys, development=False)) as api:
        refused = await api.get("/v1/conversations", headers=bearer(DEMO_API_KEY))
    assert (refused.status_code, refused.json()) == (401, {"error": DEV_KEY_REFUSED})
    assert keys.lookups == 0
    async with client(app_for(keys, development=True)) as api:
        accepted = await api.get("/v1/conversations", headers=bearer(DEMO_API_KEY))
    assert accepted.status_code == 200, accepted.text


def test_the_development_secrets_key_is_refused_unless_development() -> None:
    with pytest.raises(ValidationError, match="public development key"):
        Settings(environment="production")
    with pytest.raises(ValidationError, match="public development key"):  # even to open old ones
        Settings(environment="production", secrets_key=SecretStr(f"{new_key()},{DEV_SECRETS_KEY}"))
    assert Settings(environment="development").uses_dev_secrets_key
    assert not Settings(environment="production", secrets_key=SecretStr(new_key())).development


# -- the failed-authentication limit ------------------------------------------------------------


def wrong(prefix: str = "zf_guess000", n: int = 0) -> str:
    return f"{prefix}_{n:032d}"


async def test_an_address_that_keeps_failing_gets_429_without_lookups() -> None:
    keys, clock = FakeKeys(), Clock()
    app = app_for(keys, clock=clock)
    async with client(app) as api:
        for n in range(AuthLimits().address_burst):
            answer = await api.get("/v1/conversations", headers=bearer(wrong(f"zf_{n:08x}")))
            assert answer.status_code == 401
        lookups = keys.lookups
        limited = await api.get("/v1/conversations", headers=bearer(wrong("zf_ffffffff")))
        assert limited.status_code == 429
        assert limited.json() == {"error": "too many failed authentications"}
        assert int(limited.headers["retry-after"]) >= 1
        assert keys.lookups == lookups  # no database work, no hint
        clock.now += 2.0  # 0.5 failures per second: one more try
        assert (await api.get("/v1/conversations", headers=bearer(wrong()))).status_code == 401
        assert (await api.get("/v1/conversations", headers=bearer(wrong()))).status_code == 429
    async with client(app, address="198.51.100.7") as other:
        assert (await other.get("/v1/conversations", headers=bearer(wrong()))).status_code == 401


async def test_a_working_key_is_not_locked_out_by_its_address_or_prefix_being_limited() -> None:
    keys = FakeKeys()
    valid = keys.add("zf_a1b2c3d4_" + "v" * 32, "acme", scopes.MESSAGES_READ)
    fresh = keys.add("zf_0f0f0f0f_" + "f" * 32, "acme", scopes.MESSAGES_READ)
    app = app_for(keys)
    async with client(app, address="192.0.2.10") as office:
        assert (await office.get("/v1/conversations", headers=bearer(valid))).status_code == 200
        # an attacker behind the same address, then from many addresses at the key's prefix
        for n in range(AuthLimits().address_burst):
            await office.get("/v1/conversations", headers=bearer(wrong(n=n)))
        assert (await office.get("/v1/conversations", headers=bearer(wrong()))).status_code == 429
        assert (await office.get("/v1/conversations", headers=bearer(valid))).status_code == 200
        # a key never seen by this replica waits while its address is limited (documented)
        assert (await office.get("/v1/conversations", headers=bearer(fresh))).status_code == 429
    for n in range(AuthLimits().prefix_burst):
        async with client(app, address=f"10.9.{n}.1") as bot:
            await bot.get("/v1/conversations", headers=bearer(wrong("zf_a1b2c3d4", n)))
    async with client(app, address="100.64.3.3") as anywhere:
        guess = await anywhere.get("/v1/conversations", headers=bearer(wrong("zf_a1b2c3d4")))
        assert guess.status_code == 429
        assert (await anywhere.get("/v1/conversations", headers=bearer(valid))).status_code == 200
        assert (await anywhere.get("/v1/conversations", headers=bearer(fresh))).status_code == 200
        other = await anywhere.get("/v1/conversations", headers=bearer(wrong("zf_99999999")))
        assert other.status_code == 401


async def test_a_revoked_key_is_refused_and_leaves_the_known_set() -> None:
    keys = FakeKeys()
    key = keys.add("zf_77777777_" + "r" * 32, "acme", scopes.MESSAGES_READ)
    app = app_for(keys)
    async with client(app) as api:
        assert (await api.get("/v1/conversations", headers=bearer(key))).status_code == 200
        keys.rows[hash_key(key)]["revoked_at"] = datetime.now(UTC)
        answer = await api.get("/v1/conversations", headers=bearer(key))
        assert (answer.status_code, answer.json()) == (401, {"error": "revoked API key"})
        assert (await api.get("/v1/conversations")).json() == {"error": "missing API key"}


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert client_group("2001:db8:1:2:aaaa::1") == client_group("2001:db8:1:2:bbbb::9")
    assert client_group("2001:db8:1:3::1") != client_group("2001:db8:1:2::1")
    assert client_group("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_group(None) == "unknown"


# -- media ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "served"),
    [
        ("image/jpeg", "image/jpeg"),
        ("IMAGE/PNG; charset=x", "image/png"),
        ("audio/ogg; codecs=opus", "audio/ogg"),
        ("video/mp4", "video/mp4"),
        ("application/pdf", "application/pdf"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/xhtml+xml", "application/octet-stream"),
        ("text/javascript", "application/octet-stream"),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/octet-stream",
        ),
        ("text/plain\r\nSet-Cookie: x=1", "application/octet-stream"),
        (None, "application/octet-stream"),
    ],
)
def test_only_passive_media_types_are_served_as_stored(stored: str | None, served: str) -> None:
    assert served_type(stored) == served


def test_attachment_file_names_are_sanitized() -> None:
    assert (
        attachment("foto.jpg", "x")
        == "attachment; filename=\"foto.jpg\"; filename*=UTF-8''foto.jpg"
    )
    evil = attachment('../../etc/pa"ss\r\nwd.html', "x")
    assert "\r" not in evil
    assert "\n" not in evil
    assert "/" not in evil.split("filename*")[0]
    assert evil.startswith('attachment; filename="_.._etc_pa_ss__wd.html"')
    assert attachment("orçamento.pdf", "x").endswith("filename*=UTF-8''or%C3%A7amento.pdf")
    assert 'filename="or_amento.pdf"' in attachment("orçamento.pdf", "x")
    assert (
        attachment(None, "media-1") == "attachment; filename=\"media-1\"; filename*=UTF-8''media-1"
    )


@pytest_asyncio.fixture
async def media_api() -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(FakeKeys())
    reader = Principal("acme", "k", frozenset({scopes.MESSAGES_READ}))
    app.dependency_overrides[current_tenant] = lambda: reader
    html = b"<script>alert(document.cookie)</script>"
    info = q.MediaInfo(
        message_id=uuid4(),
        mime_type="text/html",
        size_bytes=len(html),
        sha256="ab" * 32,
        filename="<img>.html",
        stored_at=datetime.now(UTC),
    )
    app.state.service.nc.answers[q.GET_MEDIA] = lambda _: q.MediaChunk(
        state="stored", media=info, data_b64=base64.b64encode(html).decode(), eof=True
    )
    async with client(app) as api:
        yield api


async def test_media_is_an_attachment_that_cannot_run_in_the_gateway_origin(
    media_api: httpx.AsyncClient,
) -> None:
    answer = await media_api.get(f"/v1/media/{uuid4()}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-disposition"].startswith('attachment; filename="_img_.html"')
    assert answer.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert answer.content.startswith(b"<script>")
