"""NATS identities and request-reply against a real nats-server enforcing the permissions.

The server is this module's own, configured like ``zapflow up`` and the deployments configure
theirs (``Identities.authorization_config``): a client without credentials, or with another
service's, is refused by the server itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio
from nats.aio.client import Client
from pydantic import ValidationError

from zapflow.contracts.access import ADMIN
from zapflow.contracts.errors import TransientError
from zapflow.contracts.queries import ERROR_HEADER
from zapflow.contracts.queries import compliance_v1 as cq
from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)
from zapflow.embedded import NatsServer
from zapflow.runtime import rpc
from zapflow.runtime.broker import IdentityRefusedError, connect
from zapflow.runtime.credentials import ChannelCredentials
from zapflow.runtime.natsauth import Identities, authorization_config, public_key

pytestmark = pytest.mark.integration

IDS = Identities.generate()


@pytest.fixture(scope="module")
def secured() -> Iterator[str]:
    with NatsServer(config=IDS.authorization_config()) as server:
        yield server.url


async def as_(url: str, identity: str, **kwargs: object) -> Client:
    return await connect(url, f"test-{identity}", identity=identity, seed=IDS.seed(identity))


@pytest_asyncio.fixture
async def gateway(secured: str) -> AsyncIterator[Client]:
    nc = await as_(secured, "gateway")
    yield nc
    await nc.close()


class Answers:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def __call__(
        self, request: ChannelCredentialsRequest, caller: str
    ) -> ChannelCredentialsReply:
        self.asked.append((caller, request.channel_id))
        if request.channel_id == "broken":
            raise RuntimeError("boom")
        if request.channel_id == "busy":
            raise TransientError("database down")
        return ChannelCredentialsReply(found=True, provider="meta", credentials={"k": "v"})


@pytest_asyncio.fixture
async def answers(gateway: Client) -> AsyncIterator[Answers]:
    answer = Answers()
    async with AsyncExitStack() as resources:
        await rpc.serve(gateway, CHANNEL_CREDENTIALS, answer, resources)
        yield answer


def request(channel: str = "ch-1") -> ChannelCredentialsRequest:
    return ChannelCredentialsRequest(tenant_id="acme", channel_id=channel)


async def test_a_client_without_credentials_is_refused(secured: str) -> None:
    with pytest.raises(IdentityRefusedError):
        await asyncio.wait_for(connect(secured, "anonymous", identity="sender"), 10)


async def test_a_seed_the_server_does_not_know_is_refused(secured: str) -> None:
    stranger = Identities.generate(["sender"]).seed("sender")
    with pytest.raises(IdentityRefusedError):
        await asyncio.wait_for(connect(secured, "x", identity="sender", seed=stranger), 10)


async def test_the_allowed_callers_get_answers_naming_them(secured: str, answers: Answers) -> None:
    for identity in ("sender", "ingest"):
        nc = await as_(secured, identity)
        try:
            reply = await rpc.ask(nc, CHANNEL_CREDENTIALS, request(), caller=identity)
        finally:
            await nc.close()
        assert reply.found
        assert reply.credentials == {"k": "v"}
    assert answers.asked == [("sender", "ch-1"), ("ingest", "ch-1")]


async def test_another_service_cannot_ask_for_credentials(secured: str, answers: Answers) -> None:
    nc = await as_(secured, "compliance")
    try:
        for caller in ("compliance", "sender"):  # neither under its own name nor another's
            with pytest.raises(rpc.QueryUnavailable):
                await rpc.ask(nc, CHANNEL_CREDENTIALS, request(), caller=caller, timeout_s=0.5)
    finally:
        await nc.close()
    assert answers.asked == []  # the server dropped the requests: nothing reached the gateway


async def test_another_service_cannot_answer_or_snoop_on_replies(
    secured: str, answers: Answers
) -> None:
    spy = await as_(secured, "compliance")
    seen: list[bytes] = []
    errors: list[str] = []
    spy._error_cb = lambda e: errors.append(str(e)) or asyncio.sleep(0)  # type: ignore[assignment]

    async def record(msg: object) -> None:
        seen.append(b"x")

    try:
        await spy.subscribe(CHANNEL_CREDENTIALS.listen, cb=record)  # impersonate the gateway
        await spy.subscribe("_INBOX.sender.>", cb=record)  # read the sender's replies
        await spy.subscribe("_INBOX.>", cb=record)
        await spy.flush()
        sender = await as_(secured, "sender")
        try:
            for _ in range(5):
                await rpc.ask(sender, CHANNEL_CREDENTIALS, request(), caller="sender")
        finally:
            await sender.close()
        await asyncio.sleep(0.2)
    finally:
        await spy.close()
    assert seen == []
    assert sum("permissions violation for subscription" in e for e in errors) == 3
    assert len(answers.asked) == 5


async def test_a_service_cannot_publish_another_services_events(secured: str) -> None:
    nc = await as_(secured, "sender")
    js = nc.jetstream()
    try:  # the sender reports outcomes; approving sends is compliance's
        with pytest.raises(Exception):  # noqa: B017, PT011 - a timeout: the server drops it
            await js.publish("zf.sender.send_approved.v1.acme.ch-1", b"{}", timeout=0.5)
        with pytest.raises(Exception):  # noqa: B017, PT011
            await js.delete_stream("ZF_SENDER", timeout=0.5)  # type: ignore[call-arg]
    finally:
        await nc.close()


async def test_failures_come_back_in_one_envelope(secured: str, answers: Answers) -> None:
    nc = await as_(secured, "sender")
    try:
        with pytest.raises(rpc.QueryUnavailable):
            await rpc.ask(nc, CHANNEL_CREDENTIALS, request("busy"), caller="sender")
        with pytest.raises(rpc.QueryFailed) as internal:
            await rpc.ask(nc, CHANNEL_CREDENTIALS, request("broken"), caller="sender")
        assert internal.value.code == "internal"
        raw = await nc.request(CHANNEL_CREDENTIALS.subject_for("sender"), b'{"tenant_id": "X"}')
    finally:
        await nc.close()
    assert raw.headers is not None
    assert raw.headers[ERROR_HEADER] == "bad_request"
    assert "tenant_id" in raw.data.decode()
    assert '"X"' not in raw.data.decode()  # the input is not echoed


async def test_the_responder_refuses_a_caller_its_declaration_does_not_name() -> None:
    responder = rpc.Responder(CHANNEL_CREDENTIALS, Answers(), concurrency=1)
    _, headers = await responder.reply_to(
        CHANNEL_CREDENTIALS.subject_for("compliance"), request().model_dump_json().encode()
    )
    assert headers == {ERROR_HEADER: "forbidden"}
    _, headers = await responder.reply_to(
        CHANNEL_CREDENTIALS.subject, request().model_dump_json().encode()
    )
    assert headers == {ERROR_HEADER: "forbidden"}


async def test_credentials_are_cached_and_shared(secured: str, answers: Answers) -> None:
    nc = await as_(secured, "sender")
    try:
        cache = ChannelCredentials(nc, caller="sender", ttl_s=60)
        first = await asyncio.gather(*(cache.get("acme", "ch-1") for _ in range(5)))
        assert len(answers.asked) == 1
        assert {r.credentials["k"] for r in first} == {"v"}
        cache.invalidate("acme", "ch-1")
        await cache.get("acme", "ch-1")
        assert len(answers.asked) == 2
        with pytest.raises(rpc.QueryUnavailable):
            await cache.get("acme", "busy")
    finally:
        await nc.close()


async def test_without_a_responder_credentials_are_unavailable_for_every_waiter(
    secured: str,
) -> None:
    nc = await as_(secured, "sender")
    try:
        cache = ChannelCredentials(nc, caller="sender", timeout_s=0.3)
        results = await asyncio.gather(
            *(cache.get("acme", "ch-1") for _ in range(3)), return_exceptions=True
        )
    finally:
        await nc.close()
    assert all(isinstance(r, rpc.QueryUnavailable) for r in results)


def test_the_authorization_config_holds_public_keys_only() -> None:
    text = IDS.authorization_config()
    for identity, seed in IDS.seeds.items():
        assert seed not in text
        assert public_key(seed) in text, identity
    by_env = authorization_config()
    assert "$ZF_SENDER_NATS_NKEY" in by_env
    assert f"$ZF_{ADMIN.upper()}_NATS_NKEY" in by_env


def test_a_malformed_seed_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not an NKey seed"):
        public_key("SUnotaseed")


def test_validation_problems_are_described_without_the_input() -> None:
    try:
        cq.ConsentQuery.model_validate(
            {"tenant_id": "Bad Tenant", "address": "+5511999990001", "channel_id": "x"}
        )
    except ValidationError as exc:
        text = rpc.describe(exc)
    assert "tenant_id" in text
    assert "Bad Tenant" not in text
