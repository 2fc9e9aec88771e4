"""The gateway's admin REST API and bootstrap command, against real NATS and PostgreSQL.

Channels are managed per tenant with API keys; other tenants' channels do not exist for a key;
secrets go in and never come out; every change is announced on ``ZF_CHANNELS`` (through the
outbox) without a secret in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import SecretStr

from zapflow.contracts.channels.v1 import ChannelDisabled, ChannelRegistered, ChannelUpdated
from zapflow.contracts.streams import ZF_CHANNELS
from zapflow.contracts.subjects import (
    CHANNELS_DISABLED_V1,
    CHANNELS_REGISTERED_V1,
    CHANNELS_UPDATED_V1,
    subject,
)
from zapflow.embedded import free_port
from zapflow.gateway import store, tenants
from zapflow.gateway.app import create_service
from zapflow.gateway.settings import Settings
from zapflow.runtime.service import Service
from zapflow.testing import connect as connect_nats
from zapflow.testing import unique

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://gateway.example.test"
ADMIN = Path(sys.executable).parent / "zapflow-gateway-admin"
SECRET_VALUES = ("meta-app-secret-value", "meta-verify-value", "meta-access-token-value")


@dataclass
class Api:
    service: Service
    client: httpx.AsyncClient
    dsn: str
    tenant_a: str
    key_a: str
    tenant_b: str
    key_b: str
    js: JetStreamContext  # the test's own (admin) view of the streams

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    @property
    def a(self) -> dict[str, str]:
        return self.auth(self.key_a)

    @property
    def b(self) -> dict[str, str]:
        return {"X-Api-Key": self.key_b}


@pytest_asyncio.fixture(scope="module")
async def api(nats_url: str, pg_dsn: str) -> AsyncIterator[Api]:
    settings = Settings(
        nats_url=nats_url,
        database_url=SecretStr(pg_dsn),
        http_port=free_port(),
        shutdown_grace_s=3,
        public_url=PUBLIC_URL,
        outbox_poll_s=0.2,
        gc_freeze=False,
    )
    service = create_service(settings)
    async with service.running():
        keys = []
        async with service.pool.acquire() as conn:
            for name in ("a", "b"):
                tenant = unique(name)
                await tenants.create_tenant(conn, tenant, f"Tenant {name}")
                keys.append((tenant, (await tenants.issue_api_key(conn, tenant)).key))
        base_url = f"http://127.0.0.1:{settings.http_port}"
        inspector = await connect_nats(nats_url)
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            yield Api(service, client, pg_dsn, *keys[0], *keys[1], inspector.jetstream())
        await inspector.close()


def meta_channel(channel_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": channel_id or unique("meta"),
        "provider": "meta",
        "display_name": "Loja Centro",
        "phone": "+5511999990000",
        "provider_account": "109876543210987",
        "pace": {"rate_per_second": 80, "burst": 20},
        "policy": {"timezone": "America/Sao_Paulo", "require_opt_in": True},
        "secrets": dict(
            zip(["app_secret", "verify_token", "access_token"], SECRET_VALUES, strict=True)
        ),
        **extra,
    }


async def channel_event(js: JetStreamContext, type_name: str, tenant: str, channel: str) -> Any:
    """The last event of this kind for the channel, once the outbox relay published it."""
    for _ in range(100):
        try:
            return await js.get_last_msg(ZF_CHANNELS.name, subject(type_name, tenant, channel))
        except NotFoundError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"no {type_name} event for {channel}")


def assert_no_secret(text: str) -> None:
    for value in SECRET_VALUES:
        assert value not in text


# -- create, read, list ---------------------------------------------------------------------------


async def test_register_a_channel_and_read_it_back_without_secrets(api: Api) -> None:
    body = meta_channel()
    created = await api.client.post("/v1/channels", json=body, headers=api.a)
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["id"] == body["id"]
    assert channel["tenant_id"] == api.tenant_a
    assert channel["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    assert channel["webhook_url"] == f"{PUBLIC_URL}/webhooks/meta/{body['id']}"
    assert channel["pace"]["rate_per_second"] == 80
    assert channel["policy"]["timezone"] == "America/Sao_Paulo"
    assert channel["enabled"] is True
    assert_no_secret(created.text)

    read = await api.client.get(f"/v1/channels/{body['id']}", headers=api.a)
    assert read.status_code == 200
    assert read.json() == channel
    listed = await api.client.get("/v1/channels", headers=api.a)
    assert body["id"] in [c["id"] for c in listed.json()["items"]]
    assert_no_secret(listed.text)


async def test_registration_is_announced_without_secrets(api: Api) -> None:
    body = meta_channel()
    assert (await api.client.post("/v1/channels", json=body, headers=api.a)).status_code == 201
    msg = await channel_event(api.js, CHANNELS_REGISTERED_V1, api.tenant_a, body["id"])
    event = ChannelRegistered.model_validate_json(msg.data)
    assert msg.headers["Nats-Msg-Id"] == str(event.id)
    assert event.tenant_id == api.tenant_a
    assert event.channel.channel_id == body["id"]
    assert event.channel.pace.rate_per_second == 80
    assert event.channel.policy.require_opt_in
    assert event.channel.credentials_ref == f"gateway:{api.tenant_a}/{body['id']}"
    assert_no_secret(msg.data.decode())


@pytest.mark.parametrize("provider", ["evolution", "zapi", "wuzapi"])
async def test_unsigned_providers_get_a_webhook_url_with_their_token(
    api: Api, provider: str
) -> None:
    body = {"id": unique(provider), "provider": provider, "pace": {"rate_per_second": 1}}
    created = await api.client.post("/v1/channels", json=body, headers=api.a)
    assert created.status_code == 201, created.text
    url = created.json()["webhook_url"]
    assert url.startswith(f"{PUBLIC_URL}/webhooks/{provider}/{body['id']}?token=")
    assert len(url.rsplit("=", 1)[1]) >= 32


# -- tenant isolation ---------------------------------------------------------------------------


async def test_another_tenants_channel_does_not_exist_for_a_key(api: Api) -> None:
    body = meta_channel()
    assert (await api.client.post("/v1/channels", json=body, headers=api.a)).status_code == 201
    path = f"/v1/channels/{body['id']}"
    for method, url, payload in [
        ("GET", path, None),
        ("PATCH", path, {"display_name": "stolen"}),
        ("POST", f"{path}/disable", {}),
        ("POST", f"{path}/enable", None),
    ]:
        response = await api.client.request(method, url, json=payload, headers=api.b)
        assert (response.status_code, response.json()) == (404, {"error": "unknown channel"})
    listed = await api.client.get("/v1/channels", headers=api.b)
    assert body["id"] not in [c["id"] for c in listed.json()["items"]]
    mine = await api.client.get(path, headers=api.a)
    assert mine.json()["display_name"] == "Loja Centro"
    assert mine.json()["enabled"] is True


async def test_channel_ids_are_unique_across_tenants(api: Api) -> None:
    body = meta_channel()
    assert (await api.client.post("/v1/channels", json=body, headers=api.a)).status_code == 201
    again = await api.client.post("/v1/channels", json=body, headers=api.b)
    assert (again.status_code, again.json()) == (409, {"error": "channel id already taken"})


# -- authentication -------------------------------------------------------------------------------


async def test_missing_invalid_and_revoked_keys_are_401(api: Api) -> None:
    missing = await api.client.get("/v1/channels")
    assert (missing.status_code, missing.json()) == (401, {"error": "missing API key"})
    assert missing.headers["www-authenticate"] == "Bearer"
    invalid = await api.client.get("/v1/channels", headers={"X-Api-Key": "zf_nope"})
    assert (invalid.status_code, invalid.json()) == (401, {"error": "invalid API key"})
    async with api.service.pool.acquire() as conn:
        issued = await tenants.issue_api_key(conn, api.tenant_a, "to revoke")
        assert await api.client.get("/v1/channels", headers=api.auth(issued.key)) is not None
        assert await store.revoke_api_key(conn, api.tenant_a, issued.prefix) == 1
    revoked = await api.client.get("/v1/channels", headers=api.auth(issued.key))
    assert (revoked.status_code, revoked.json()) == (401, {"error": "revoked API key"})


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": "Not A Slug"}, "id: String should match pattern"),
        ({"provider": "telegram"}, "provider: Value error, unsupported provider"),
        ({"pace": {}}, "pace.rate_per_second: Field required"),
        ({"pace": {"rate_per_second": 1, "rate": 2}}, "pace.rate: Extra inputs are not permitted"),
        ({"policy": {"timezone": "Mars/Olympus"}}, "policy.timezone: Value error, unknown IANA"),
        ({"phone": "11 9999"}, "phone: String should match pattern"),
        ({"base_url": "ftp://x"}, "base_url: String should match pattern"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ],
)
async def test_invalid_channels_are_400_with_reasons(
    api: Api, change: dict[str, Any], reason: str
) -> None:
    response = await api.client.post("/v1/channels", json=meta_channel(**change), headers=api.a)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid request"
    assert any(r.startswith(reason) for r in body["reasons"]), body["reasons"]


async def test_secret_rules_are_400_too(api: Api) -> None:
    wrong = meta_channel(secrets={"app_secret": "x", "hmac_key": "y"})
    response = await api.client.post("/v1/channels", json=wrong, headers=api.a)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "secrets not used by meta: hmac_key"},
    )
    missing = meta_channel(secrets={"verify_token": "x"})
    response = await api.client.post("/v1/channels", json=missing, headers=api.a)
    assert response.json() == {"error": "meta channels need secrets: app_secret"}


async def test_malformed_json_is_400_not_422(api: Api) -> None:
    response = await api.client.post(
        "/v1/channels",
        content=b"{not json",
        headers={**api.a, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid request"


# -- change, disable, enable -----------------------------------------------------------------------


async def test_patch_changes_only_what_is_given_and_announces_it(api: Api) -> None:
    body = meta_channel()
    assert (await api.client.post("/v1/channels", json=body, headers=api.a)).status_code == 201
    path = f"/v1/channels/{body['id']}"
    patch = {
        "display_name": "Loja Norte",
        "pace": {"rate_per_second": 20, "burst": 5},
        "secrets": {"access_token": "rotated-token-value", "verify_token": None},
    }
    response = await api.client.patch(path, json=patch, headers=api.a)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["display_name"] == "Loja Norte"
    assert changed["phone"] == body["phone"]
    assert changed["pace"]["rate_per_second"] == 20
    assert changed["secrets_set"] == ["access_token", "app_secret"]
    assert "rotated-token-value" not in response.text
    msg = await channel_event(api.js, CHANNELS_UPDATED_V1, api.tenant_a, body["id"])
    event = ChannelUpdated.model_validate_json(msg.data)
    assert event.changed == ("display_name", "pace", "secrets")
    assert event.channel.display_name == "Loja Norte"
    assert "rotated-token-value" not in msg.data.decode()

    same = await api.client.patch(path, json={"display_name": "Loja Norte"}, headers=api.a)
    assert same.json()["updated_at"] == changed["updated_at"]  # nothing changed, no event
    for bad, reason in [
        ({"provider": "zapi"}, "provider: Extra inputs are not permitted"),
        ({"pace": None}, None),
        ({"secrets": {"app_secret": None}}, None),
    ]:
        refused = await api.client.patch(path, json=bad, headers=api.a)
        assert refused.status_code == 400, (bad, refused.text)
        if reason:
            assert reason in refused.json()["reasons"][0]
    assert (await api.client.get(path, headers=api.a)).json()["secrets_set"] == [
        "access_token",
        "app_secret",
    ]


async def test_in_doubt_settings_are_stored_announced_and_patched(api: Api) -> None:
    body = meta_channel()
    created = await api.client.post("/v1/channels", json=body, headers=api.a)
    assert created.status_code == 201, created.text
    assert created.json()["in_doubt"] == {"policy": None, "window_s": None}  # sender defaults
    path = f"/v1/channels/{body['id']}"
    patch = {"in_doubt": {"policy": "dead_letter", "window_s": 600}}
    response = await api.client.patch(path, json=patch, headers=api.a)
    assert response.status_code == 200, response.text
    assert response.json()["in_doubt"] == {"policy": "dead_letter", "window_s": 600}
    msg = await channel_event(api.js, CHANNELS_UPDATED_V1, api.tenant_a, body["id"])
    event = ChannelUpdated.model_validate_json(msg.data)
    assert event.changed == ("in_doubt",)
    assert (event.channel.in_doubt.policy, event.channel.in_doubt.window_s) == ("dead_letter", 600)
    for bad in ({"in_doubt": {"policy": "maybe"}}, {"in_doubt": {"window": 1}}, {"in_doubt": None}):
        refused = await api.client.patch(path, json=bad, headers=api.a)
        assert refused.status_code == 400, (bad, refused.text)


async def test_disable_and_enable_are_idempotent_and_announced(api: Api) -> None:
    body = meta_channel()
    assert (await api.client.post("/v1/channels", json=body, headers=api.a)).status_code == 201
    path = f"/v1/channels/{body['id']}"
    disabled = await api.client.post(
        f"{path}/disable", json={"reason": "number banned"}, headers=api.a
    )
    assert disabled.status_code == 200
    assert (disabled.json()["enabled"], disabled.json()["disabled_reason"]) == (
        False,
        "number banned",
    )
    again = await api.client.post(f"{path}/disable", headers=api.a)
    assert again.json()["disabled_reason"] == "number banned"  # no-op, no second event
    msg = await channel_event(api.js, CHANNELS_DISABLED_V1, api.tenant_a, body["id"])
    event = ChannelDisabled.model_validate_json(msg.data)
    assert (event.channel_id, event.reason) == (body["id"], "number banned")
    disabled_subject = subject(CHANNELS_DISABLED_V1, api.tenant_a, body["id"])
    count = await api.service.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE subject = $1", disabled_subject
    )
    assert count == 1

    enabled = await api.client.post(f"{path}/enable", headers=api.a)
    assert (enabled.json()["enabled"], enabled.json()["disabled_reason"]) == (True, None)
    msg = await channel_event(api.js, CHANNELS_UPDATED_V1, api.tenant_a, body["id"])
    assert ChannelUpdated.model_validate_json(msg.data).changed == ("enabled",)


# -- documentation ---------------------------------------------------------------------------------


async def test_openapi_documents_400_instead_of_422(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert "/v1/channels" in schema["paths"]
    assert "/v1/channels/{channel_id}/disable" in schema["paths"]
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
    assert "400" in schema["paths"]["/v1/channels"]["post"]["responses"]
    docs = await api.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    ready = await api.client.get("/readyz")  # the runtime's health routes join the app
    assert (ready.status_code, ready.json()["ready"]) == (200, True)
    unknown = await api.client.get("/v1/nothing-here")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Not Found"})


# -- zapflow-gateway-admin -------------------------------------------------------------------------


def admin(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn, "ZF_GATEWAY_PUBLIC_URL": PUBLIC_URL}
    return subprocess.run([str(ADMIN), *args], env=env, capture_output=True, text=True, timeout=60)


async def test_seed_demo_is_idempotent_and_its_key_and_channel_work(api: Api) -> None:
    first = await asyncio.to_thread(admin, api.dsn, "seed-demo")
    assert first.returncode == 0, first.stderr
    assert "tenant demo: created" in first.stdout
    assert "api key zf_demo_local_key: created" in first.stdout
    assert "channel demo-meta: created" in first.stdout
    assert f"webhook {PUBLIC_URL}/webhooks/meta/demo-meta" in first.stdout
    second = await asyncio.to_thread(admin, api.dsn, "seed-demo")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout

    demo = api.auth("zf_demo_local_key")
    channel = (await api.client.get("/v1/channels/demo-meta", headers=demo)).json()
    assert channel["pace"]["rate_per_second"] == 80
    assert channel["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    signature = "sha256=" + hmac.new(b"demo-app-secret", body, hashlib.sha256).hexdigest()
    for _ in range(100):  # the running gateway learns of the channel through NOTIFY
        stored = await api.client.post(
            "/webhooks/meta/demo-meta", content=body, headers={"X-Hub-Signature-256": signature}
        )
        if stored.status_code != 404:
            break
        await asyncio.sleep(0.02)
    assert stored.status_code == 200
    handshake = await api.client.get(
        "/webhooks/meta/demo-meta",
        params={"hub.mode": "subscribe", "hub.verify_token": "demo-verify", "hub.challenge": "7"},
    )
    assert handshake.text == "7"


async def test_create_tenant_and_api_key_commands(api: Api) -> None:
    tenant = unique("cli")
    created = await asyncio.to_thread(admin, api.dsn, "create-tenant", tenant, "--name", "CLI")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"tenant {tenant}: created"
    issued = await asyncio.to_thread(admin, api.dsn, "create-api-key", tenant)
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    assert key.startswith("zf_")
    listed = await api.client.get("/v1/channels", headers=api.auth(key))
    assert (listed.status_code, listed.json()) == (200, {"items": []})

    refused = await asyncio.to_thread(admin, api.dsn, "create-tenant", "Bad Id", "--name", "x")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: tenant id must be")
    unknown = await asyncio.to_thread(admin, api.dsn, "create-api-key", unique("ghost"))
    assert (unknown.returncode, unknown.stderr) == (1, "error: unknown tenant\n")
