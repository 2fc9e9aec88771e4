"""Shared plumbing of the ingest tests: provider fixtures, raw webhooks, a running ingest.

Integration tests share the session's nats-server and run ingest in-process against a database
of their module's own. Isolation comes from names: the module's ingest consumes a durable of its
own (``ingest-test-<hex>``) filtered to a pool of tenants generated for the module, and each test
takes fresh tenants from that pool, so nothing another test (or another package's tests) publishes
reaches it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.specs import ConsumerSpec
from zapflow.contracts.streams import ZF_INBOUND
from zapflow.contracts.subjects import INBOUND_WEBHOOK_RECEIVED_V1, subject_for
from zapflow.embedded import free_port
from zapflow.ingest.app import Deps, create_service
from zapflow.ingest.settings import Settings
from zapflow.providers import get_adapter
from zapflow.providers.errors import WebhookPayloadError
from zapflow.runtime.service import Service
from zapflow.testing import connect as connect_nats
from zapflow.testing import own_durables_seed, unique
from zapflow.testing.types import DatabaseFactory

FIXTURES_ENV = "ZF_PROVIDER_FIXTURES"
PROVIDERS = ("meta", "evolution", "zapi", "wuzapi")
FORM = "application/x-www-form-urlencoded"
TENANTS_PER_MODULE = 48


@cache
def fixtures_root() -> Path:
    """``../shared/providers`` next to the repository, or ``$ZF_PROVIDER_FIXTURES``."""
    override = os.environ.get(FIXTURES_ENV)
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "providers"
        if all((candidate / p).is_dir() for p in PROVIDERS):
            return candidate
    raise pytest.UsageError(f"provider fixtures not found; set {FIXTURES_ENV}")


class Webhooks:
    """Raw webhook bodies and ``WebhookReceived`` events (the ``webhooks`` fixture)."""

    @staticmethod
    def fixture_names(provider: str) -> list[str]:
        return sorted(p.name for p in (fixtures_root() / provider).glob("*.json"))

    @staticmethod
    def wire_body(provider: str, name: str) -> tuple[bytes, str]:
        """A fixture as the provider sends it: WuzAPI ``*_form.json`` files hold decoded form
        fields and are re-encoded to the url-encoded body (keys sorted, like Go)."""
        raw = (fixtures_root() / provider / name).read_bytes()
        if provider == "wuzapi" and name.endswith("_form.json"):
            fields = json.loads(raw)
            return urllib.parse.urlencode(sorted(fields.items())).encode(), FORM
        return raw, "application/json"

    @staticmethod
    def raw_event(
        tenant: str,
        channel: str,
        provider: str,
        body: bytes,
        content_type: str = "application/json",
        event_id: UUID | None = None,
    ) -> WebhookReceived:
        return WebhookReceived(
            id=event_id or uuid4(),
            tenant_id=tenant,
            provider=provider,
            channel_id=channel,
            received_at=datetime.now(UTC),
            body_b64=base64.b64encode(body).decode(),
            content_type=content_type,
        )

    @staticmethod
    def meta_text(
        wamid: str,
        phone: str = "5511999990001",
        text: str = "oi",
        ts: int = 1763647200,
        name: str | None = "Ana",
    ) -> bytes:
        """A Meta inbound text webhook."""
        contact: dict[str, Any] = {"wa_id": phone}
        if name:
            contact["profile"] = {"name": name}
        message = {
            "from": phone,
            "id": wamid,
            "timestamp": str(ts),
            "type": "text",
            "text": {"body": text},
        }
        return _meta_envelope({"contacts": [contact], "messages": [message]})

    @staticmethod
    def meta_status(wamid: str, status: str, ts: int, phone: str = "5511999990001") -> bytes:
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(ts),
            "recipient_id": phone,
        }
        if status == "failed":
            item["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
        return _meta_envelope({"statuses": [item]})

    @staticmethod
    def evolution(event: str, data: dict[str, Any], at: str = "2025-11-20T14:00:00.000Z") -> bytes:
        """An Evolution API v2 webhook envelope."""
        envelope = {
            "event": event,
            "instance": "loja",
            "data": data,
            "date_time": at,
            "sender": "5511999990000@s.whatsapp.net",
        }
        return json.dumps(envelope).encode()

    @staticmethod
    def evo_text(
        message_id: str,
        jid: str = "5511999990001@s.whatsapp.net",
        text: str = "oi",
        ts: int = 1763647200,
        *,
        alt: str | None = None,
        from_me: bool = False,
        name: str = "Ana",
        event: str = "messages.upsert",
    ) -> bytes:
        """An Evolution text message (``alt``: ``remoteJidAlt``, the other identity)."""
        key: dict[str, Any] = {"remoteJid": jid, "fromMe": from_me, "id": message_id}
        if alt:
            key["remoteJidAlt"] = alt
        data = {
            "key": key,
            "pushName": name,
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": ts,
        }
        return Webhooks.evolution(event, data)

    @staticmethod
    def evo_status(
        message_id: str, status: str, at: str, jid: str = "5511999990001@s.whatsapp.net"
    ) -> bytes:
        data = {"keyId": message_id, "remoteJid": jid, "fromMe": True, "status": status}
        return Webhooks.evolution("messages.update", data, at)


def _meta_envelope(value: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511999990000", "phone_number_id": "1"},
        **value,
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
        }
    ).encode()


@pytest.fixture(scope="session")
def webhooks() -> Webhooks:
    return Webhooks()


@cache
def item_fixtures() -> list[tuple[str, str]]:
    """(provider, file) of every recorded webhook that carries messages or statuses."""
    found = []
    for provider in PROVIDERS:
        for name in Webhooks.fixture_names(provider):
            body, content_type = Webhooks.wire_body(provider, name)
            try:
                parsed = get_adapter(provider).parse_webhook(body, content_type)
            except WebhookPayloadError:
                continue  # send requests/responses and error bodies are not webhooks
            if parsed.messages or parsed.statuses:
                found.append((provider, name))
    return found


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``item_fixture`` runs once per recorded webhook with messages/statuses."""
    if "item_fixture" in metafunc.fixturenames:
        cases = item_fixtures()
        metafunc.parametrize("item_fixture", cases, ids=[f"{p}/{n}" for p, n in cases])


@dataclass
class Ingest:
    """A running ingest plus helpers to feed it and look at what it did."""

    service: Service
    js: JetStreamContext
    nc: Client
    db: asyncpg.Pool
    durable: str
    tenants: Iterator[str]
    last_seq: int = 0

    def tenant(self) -> str:
        return next(self.tenants)

    async def publish(self, *events: WebhookReceived, msg_id: str | None = None) -> None:
        for evt in events:
            ack = await self.js.publish(
                subject_for(evt),
                evt.model_dump_json().encode(),
                headers={"Nats-Msg-Id": msg_id or str(evt.id), "Zf-Tenant": evt.tenant_id},
            )
            if not ack.duplicate:
                self.last_seq = max(self.last_seq, ack.seq)

    async def send(
        self,
        tenant: str,
        channel: str,
        provider: str,
        body: bytes,
        content_type: str = "application/json",
    ) -> WebhookReceived:
        """Publish one raw webhook and wait until ingest acked it."""
        evt = Webhooks.raw_event(tenant, channel, provider, body, content_type)
        await self.publish(evt)
        await self.idle()
        return evt

    async def idle(self, within: float = 15.0) -> None:
        """Wait until everything published so far was acknowledged (or terminated)."""
        deadline = time.monotonic() + within
        while True:
            info = await self.js.consumer_info(ZF_INBOUND.name, self.durable)
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            if floor >= self.last_seq and info.num_ack_pending == 0 and info.num_pending == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"ingest still busy: {info.num_pending} pending, {info.num_ack_pending} unacked"
                )
            await asyncio.sleep(0.02)

    async def events(
        self, subject: str, quiet: float = 0.1
    ) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """Every message stored on ``subject`` (headers, body), oldest first."""
        stream = await self.js.find_stream_name_by_subject(subject)
        sub = await self.js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=5.0
            ),
        )
        out: list[tuple[dict[str, str], dict[str, Any]]] = []
        try:
            while True:
                try:
                    msgs = await sub.fetch(256, timeout=quiet)
                except (TimeoutError, nats.errors.TimeoutError):
                    return out
                out.extend((dict(m.headers or {}), json.loads(m.data)) for m in msgs)
        finally:
            await sub.unsubscribe()

    async def wait_until(self, check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not await check():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached")
            await asyncio.sleep(0.05)


def ingest_settings(nats_url: str, dsn: str, media_dir: Path) -> Settings:
    return Settings(
        nats_url=nats_url,
        nats_nkey_seed=own_durables_seed(),  # ingest_consumer() is the test's own durable
        database_url=dsn,
        http_port=free_port(),
        media_dir=media_dir,
        media_poll_s=0.2,
        shutdown_grace_s=3,
        log_format="text",
    )


def ingest_consumer(tenants: list[str]) -> ConsumerSpec:
    return ConsumerSpec(
        durable=unique("ingest-test"),
        stream=ZF_INBOUND.name,
        owner="ingest",
        filter_subjects=tuple(f"{INBOUND_WEBHOOK_RECEIVED_V1}.{t}.>" for t in tenants),
        ack_wait_s=10,
        max_deliver=4,
        description="ingest tests",
    )


@pytest_asyncio.fixture(scope="module")
async def ingest_deps() -> Deps:
    """Override in a module to plug fakes (media transport, credentials, store)."""
    return Deps()


@pytest_asyncio.fixture(scope="module")
async def ingest(
    nats_url: str,
    fresh_db: DatabaseFactory,
    ingest_deps: Deps,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Ingest]:
    tenants = [unique("t") for _ in range(TENANTS_PER_MODULE)]
    spec = ingest_consumer(tenants)
    dsn = fresh_db("ingest")
    settings = ingest_settings(nats_url, dsn, tmp_path_factory.mktemp("media"))
    deps = Deps(
        raw_consumer=spec,
        http_transport=ingest_deps.http_transport,
        media_store=ingest_deps.media_store,
        credentials=ingest_deps.credentials,
        background=ingest_deps.background,
        egress=ingest_deps.egress,
    )
    service = create_service(settings, deps)
    nc = await connect_nats(nats_url)
    db = await asyncpg.create_pool(
        dsn, min_size=1, max_size=4, server_settings={"search_path": "ingest, public"}
    )
    try:
        async with service.running():
            yield Ingest(service, nc.jetstream(), nc, db, spec.durable, iter(tenants))
            await nc.jetstream().delete_consumer(ZF_INBOUND.name, spec.durable)
    finally:
        await db.close()
        await nc.close()
