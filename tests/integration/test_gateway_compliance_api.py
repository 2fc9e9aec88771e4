"""The gateway's compliance API answered by a running compliance service (real NATS, PostgreSQL).

Rules set through the gateway are the rules compliance decides with; an opt-out posted to the
gateway reaches compliance as a ``ChangeConsent`` command (through the outbox) and vetoes the
next send to that contact; decisions are read back with their reason and human text. Another
tenant sees none of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from zapflow.compliance.app import create_service as create_compliance
from zapflow.compliance.settings import Settings as ComplianceSettings
from zapflow.embedded import free_port
from zapflow.gateway import tenants
from zapflow.gateway.app import create_service as create_gateway
from zapflow.gateway.settings import Settings as GatewaySettings
from zapflow.testing import unique
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration

PHONE = "+5511999990001"
OTHER_PHONE = "+5511999990002"


@dataclass
class Api:
    client: httpx.AsyncClient
    a: dict[str, str]
    b: dict[str, str]

    async def channel(self) -> str:
        channel_id = unique("ch")
        body = {"id": channel_id, "provider": "evolution", "pace": {"rate_per_second": 5}}
        created = await self.client.post("/v1/channels", json=body, headers=self.a)
        assert created.status_code == 201, created.text
        return channel_id

    async def send(self, channel: str, to: str, text: str) -> str:
        body = {"channel_id": channel, "to": to, "content": {"kind": "text", "body": text}}
        accepted = await self.client.post("/v1/messages", json=body, headers=self.a)
        assert accepted.status_code == 202, accepted.text
        message_id: str = accepted.json()["message_id"]
        return message_id

    async def decision(self, message_id: str) -> dict[str, Any]:
        async def decided() -> Any:
            answer = await self.client.get(f"/v1/messages/{message_id}/decision", headers=self.a)
            assert answer.status_code in (200, 404), answer.text
            return answer.json() if answer.status_code == 200 else None

        found: dict[str, Any] = await until(decided)
        return found

    async def consent(self, channel: str, address: str, headers: dict[str, str]) -> Any:
        params = {"channel_id": channel, "address": address}
        return await self.client.get("/v1/contacts/consent", params=params, headers=headers)


async def until(check: Callable[[], Awaitable[Any]], within: float = 20) -> Any:
    deadline = time.monotonic() + within
    while not (value := await check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
    return value


@pytest_asyncio.fixture(scope="module")
async def api(nats_url: str, pg_dsn: str, fresh_db: DatabaseFactory) -> AsyncIterator[Api]:
    port = free_port()
    gateway = create_gateway(
        GatewaySettings(
            nats_url=nats_url,
            database_url=SecretStr(pg_dsn),
            http_port=port,
            shutdown_grace_s=3,
            outbox_poll_s=0.2,
            gc_freeze=False,
        )
    )
    compliance = create_compliance(
        ComplianceSettings(
            nats_url=nats_url,
            database_url=fresh_db("compliance_api"),
            http_port=free_port(),
            scheduler_interval_s=0.2,
            outbox_sweep_after_s=1.0,
            unknown_channel_grace_s=10.0,
            shutdown_grace_s=3,
        )
    )
    async with compliance.running(), gateway.running():
        keys = []
        async with gateway.pool.acquire() as conn:
            for name in (unique("a"), unique("b")):
                await tenants.create_tenant(conn, name, name)
                keys.append({"X-Api-Key": (await tenants.issue_api_key(conn, name)).key})
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield Api(client, *keys)


async def test_rules_set_through_the_gateway_are_the_rules_compliance_applies(api: Api) -> None:
    default = await api.client.get("/v1/compliance/rules", headers=api.a)
    assert default.status_code == 200, default.text
    assert default.json()["is_default"] is True
    assert default.json()["rules"]["text_max_chars"] == 4096

    rules = {"text_max_chars": 20, "duplicate_interval_s": 0, "opt_out_keywords": ["PARE"]}
    put = await api.client.put("/v1/compliance/rules", json=rules, headers=api.a)
    assert put.status_code == 200, put.text
    read = await api.client.get("/v1/compliance/rules", headers=api.a)
    assert read.json()["is_default"] is False
    assert read.json()["updated_at"] is not None
    assert {k: read.json()["rules"][k] for k in rules} == rules
    assert read.json()["rules"]["opt_in_keywords"] == ["START", "VOLTAR", "UNSTOP"]  # defaults

    invalid = await api.client.put("/v1/compliance/rules", json={"text_max": 1}, headers=api.a)
    assert invalid.status_code == 400
    assert invalid.json()["reasons"] == ["text_max: Extra inputs are not permitted"]
    others = await api.client.get("/v1/compliance/rules", headers=api.b)
    assert others.json()["is_default"] is True

    channel = await api.channel()
    message_id = await api.send(channel, OTHER_PHONE, "uma mensagem longa demais para a regra")
    decision = await api.decision(message_id)
    assert (decision["outcome"], decision["reason"]) == ("vetoed", "invalid_content")
    assert decision["channel_id"] == channel
    assert "20" in decision["text"]


async def test_an_opt_out_through_the_gateway_vetoes_the_next_send(api: Api) -> None:
    channel = await api.channel()
    never = await api.consent(channel, PHONE, api.a)
    assert (never.status_code, never.json()["state"]) == (200, None)

    opted_out = await api.client.post(
        "/v1/consent/opt-out", json={"phone": PHONE, "channel_id": channel}, headers=api.a
    )
    assert opted_out.status_code == 202, opted_out.text
    assert opted_out.json()["state"] == "opted_out"

    async def recorded() -> Any:
        answer = (await api.consent(channel, PHONE, api.a)).json()
        return answer if answer["state"] == "opted_out" else None

    consent = await until(recorded)
    assert (consent["scope_channel_id"], consent["source"]) == (channel, "api")

    message_id = await api.send(channel, PHONE, "Oi!")
    decision = await api.decision(message_id)
    assert decision["message_id"] == message_id
    assert (decision["outcome"], decision["reason"]) == ("vetoed", "opted_out")
    assert decision["text"] == "The contact opted out of messages."
    assert decision["decided_at"] is not None

    opted_in = await api.client.post(
        "/v1/consent/opt-in", json={"phone": PHONE, "channel_id": channel}, headers=api.a
    )
    assert opted_in.status_code == 202

    async def back_in() -> bool:
        return bool((await api.consent(channel, PHONE, api.a)).json()["state"] == "opted_in")

    await until(back_in)


async def test_another_tenant_sees_no_decision_and_no_consent(api: Api) -> None:
    channel = await api.channel()
    message_id = await api.send(channel, OTHER_PHONE, "uma mensagem longa demais para a regra")
    await api.decision(message_id)
    theirs = await api.client.get(f"/v1/messages/{message_id}/decision", headers=api.b)
    assert theirs.status_code == 404
    consent = await api.consent(channel, PHONE, api.b)
    assert (consent.status_code, consent.json()) == (404, {"error": "unknown channel"})
    opt_out = await api.client.post(
        "/v1/consent/opt-out", json={"phone": PHONE, "channel_id": channel}, headers=api.b
    )
    assert opt_out.status_code == 404
    unknown = await api.client.get(f"/v1/messages/{uuid4()}/decision", headers=api.a)
    assert unknown.status_code == 404
    unauthenticated = await api.client.get("/v1/compliance/rules")
    assert unauthenticated.status_code == 401
