"""Shared plumbing for the gateway's unit tests.

* The recorded provider payloads: they live in ``<parent of the repository>/shared/providers``
  (``ZF_PROVIDER_FIXTURES`` overrides it), like the providers library's own tests use them.
* ``rest_api``: the REST API over in-memory fakes of the command log (PostgreSQL) and of NATS
  request-reply, authenticated as one tenant.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
from nats.errors import NoRespondersError

from zapflow.contracts.access import ALL_QUERIES
from zapflow.contracts.envelope import Event
from zapflow.contracts.queries import ERROR_HEADER, QueryFailure, QuerySpec
from zapflow.contracts.sending.v1 import SendRequested
from zapflow.gateway.api import build_app
from zapflow.gateway.auth import Principal, current_tenant
from zapflow.gateway.authlimit import FailedAuthLimiter
from zapflow.gateway.command_log import SendRecord

PROVIDERS = ("meta", "evolution", "zapi", "wuzapi")


@cache
def fixtures_root() -> Path:
    override = os.environ.get("ZF_PROVIDER_FIXTURES")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "providers"
        if all((candidate / name).is_dir() for name in PROVIDERS):
            return candidate
    raise pytest.UsageError("shared/providers not found; set ZF_PROVIDER_FIXTURES")


@pytest.fixture
def fixture_bytes() -> object:
    def read(provider: str, name: str) -> bytes:
        return (fixtures_root() / provider / name).read_bytes()

    return read


# -- the REST API with fakes for PostgreSQL (the command log) and NATS (request-reply) -----------


TENANT = "acme"
KEY_ID = "key-1"


class MemoryCommandLog:
    """The command log in memory: channels by (tenant, id) -> enabled, sends by key, events."""

    def __init__(self) -> None:
        self.channels: dict[tuple[str, str], bool] = {}
        self.sends: dict[tuple[str, str], SendRecord] = {}
        self.events: list[Event] = []

    async def channel_enabled(self, tenant_id: str, channel_id: str) -> bool | None:
        return self.channels.get((tenant_id, channel_id))

    async def find_send(self, tenant_id: str, key: str) -> SendRecord | None:
        return self.sends.get((tenant_id, key))

    async def record_send(self, record: SendRecord, event: SendRequested) -> SendRecord:
        taken = self.sends.setdefault((record.tenant_id, record.idempotency_key), record)
        if taken is record:
            self.events.append(event)
        return taken

    async def enqueue(self, event: Event) -> None:
        self.events.append(event)


class FakeNats:
    """Answers the gateway's queries with ``answers[spec](request_json)`` (a ``QueryFailure``
    comes back as a failed reply); records ``(spec, request_json)``. A query without an answer
    behaves like one nobody serves."""

    def __init__(self) -> None:
        self.answers: dict[QuerySpec[Any, Any], Callable[[dict[str, Any]], Any]] = {}
        self.requests: list[tuple[QuerySpec[Any, Any] | str, dict[str, Any]]] = []

    async def request(self, subject: str, payload: bytes, **_options: Any) -> Any:
        body = json.loads(payload)
        spec = next((q for q in ALL_QUERIES if q.subject_for("gateway") == subject), None)
        self.requests.append((spec or subject, body))
        answer = self.answers.get(spec) if spec else None
        if answer is None:
            raise NoRespondersError
        reply = answer(body)
        data = reply.model_dump_json() if hasattr(reply, "model_dump_json") else json.dumps(reply)
        headers = {ERROR_HEADER: reply.code} if isinstance(reply, QueryFailure) else None
        return SimpleNamespace(data=data.encode(), headers=headers)


class RestApi(SimpleNamespace):
    app: Any
    client: httpx.AsyncClient
    log: MemoryCommandLog
    nats: FakeNats


@pytest_asyncio.fixture
async def rest_api() -> AsyncIterator[RestApi]:
    """The gateway app, authenticated as tenant ``acme`` (key ``key-1``), over the fakes."""
    log, nats = MemoryCommandLog(), FakeNats()
    settings = SimpleNamespace(api_max_body_bytes=4096, development=False)
    gateway = SimpleNamespace(settings=settings, commands=log, auth_limiter=FailedAuthLimiter())
    app = build_app(SimpleNamespace(nc=nats), gateway)
    principal = Principal(TENANT, KEY_ID, frozenset({"admin"}))
    app.dependency_overrides[current_tenant] = lambda: principal  # scopes are still checked
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield RestApi(app=app, client=client, log=log, nats=nats)
