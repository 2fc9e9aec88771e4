"""Outcomes the sender publishes, in-process against real NATS and PostgreSQL.

A scripted provider (the ``ProviderPort``) answers each call as the test says, so retries,
permanent failures, dead letters and replays are exercised deterministically; the real HTTP path
is covered by ``test_flow`` and the acceptance tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import SecretStr

from zapflow.contracts import headers as h
from zapflow.contracts.channels.v1 import ChannelSettings, PaceSettings
from zapflow.contracts.dlq.v1 import DeadLettered
from zapflow.contracts.model import DeliveryStatus
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.registry import parse_event
from zapflow.contracts.sending.v1 import FailureReason, SendFailed, SendRequest, SendSucceeded
from zapflow.contracts.streams import ZF_DLQ
from zapflow.contracts.subjects import subject_for
from zapflow.embedded import free_port
from zapflow.providers import SendResult
from zapflow.providers.errors import (
    InvalidRecipientError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from zapflow.runtime.broker import Publisher
from zapflow.sender.app import Overrides, create_service
from zapflow.sender.settings import Settings
from zapflow.sender.testing import (
    CredentialsResponder,
    SimChannel,
    approved_text,
    register_channels,
)
from zapflow.testing import unique

pytestmark = pytest.mark.integration

PACE = PaceSettings(rate_per_second=500, burst=50)
Script = Callable[[SendRequest, int], ProviderError | None]


@dataclass
class ScriptedProvider:
    """Answers the n-th call for a message with ``script(request, n)``: an error, or success."""

    script: Script
    calls: list[tuple[str, float]] = field(default_factory=list)
    per_message: dict[UUID, int] = field(default_factory=lambda: defaultdict(int))

    async def send(
        self,
        settings: ChannelSettings,
        credentials: ChannelCredentialsReply,
        request: SendRequest,
        *,
        before_write: Callable[[], Awaitable[None]],
    ) -> SendResult:
        await before_write()
        self.per_message[request.message_id] += 1
        self.calls.append((request.to.address, asyncio.get_running_loop().time()))
        error = self.script(request, self.per_message[request.message_id])
        if error is not None:
            raise error
        return SendResult(f"wamid.{request.message_id.hex}", DeliveryStatus.QUEUED)


@dataclass
class Seen:
    sent: dict[UUID, SendSucceeded] = field(default_factory=dict)
    failed: dict[UUID, SendFailed] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Msg) -> None:
        event = parse_event((msg.headers or {})[h.ZF_TYPE], msg.data)
        if isinstance(event, SendSucceeded):
            self.sent[event.message_id] = event
        elif isinstance(event, SendFailed):
            self.failed[event.message_id] = event
        self.changed.set()

    async def until(self, done: Callable[[], bool], within_s: float = 15.0) -> None:
        async with asyncio.timeout(within_s):
            while not done():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Rig:
    bus: Client
    channel: SimChannel
    seen: Seen
    provider: ScriptedProvider
    responder: CredentialsResponder

    async def approve(self, to: str, text: str, message_id: UUID | None = None) -> UUID:
        event = approved_text(self.channel, to, text, message_id=message_id)
        await Publisher(self.bus.jetstream())(subject_for(event), event)
        return event.request.message_id


@contextlib.asynccontextmanager
async def rig(
    own_nats: str, bus: Client, dsn: str, script: Script, **settings: Any
) -> AsyncIterator[Rig]:
    channel = SimChannel(unique("t"), unique("c"), "123")
    responder = await CredentialsResponder(bus, "http://127.0.0.1:9", [channel]).start()
    await register_channels(bus.jetstream(), [channel], "http://127.0.0.1:9", PACE)
    seen = Seen()
    await bus.subscribe("zf.sending.*.v1.>", cb=seen.on_msg)
    provider = ScriptedProvider(script)
    config = Settings(
        nats_url=own_nats,
        database_url=SecretStr(dsn),
        http_port=free_port(),
        **({"retry_base_s": 0.05, "retry_cap_s": 0.2} | settings),
    )
    service = create_service(config, Overrides(provider=provider))
    async with service.running():
        yield Rig(bus, channel, seen, provider, responder)


async def letters(bus: Client, count: int) -> list[DeadLettered]:
    """The first ``count`` dead letters in ``ZF_DLQ`` (waits for them)."""
    sub = await bus.jetstream().subscribe(
        "zf.dlq.dead_lettered.v1.>", stream=ZF_DLQ.name, ordered_consumer=True
    )
    try:
        return [
            DeadLettered.model_validate_json((await sub.next_msg(timeout=10)).data)
            for _ in range(count)
        ]
    finally:
        await sub.unsubscribe()


def unavailable() -> ProviderError:
    return ProviderUnavailableError("meta HTTP 503: server error", provider="meta", code="2")


async def test_a_permanent_error_fails_at_once_with_the_code_and_no_dead_letter(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    def script(request: SendRequest, n: int) -> ProviderError | None:
        return InvalidRecipientError(
            "meta error 131026 (HTTP 400): recipient cannot receive", provider="meta", code="131026"
        )

    async with rig(own_nats, bus, sender_db, script) as r:
        message = await r.approve("+5511999990001", "hello")
        await r.seen.until(lambda: message in r.seen.failed)
    failed = r.seen.failed[message]
    assert failed.permanent
    assert failed.reason is FailureReason.INVALID_RECIPIENT
    assert (failed.error_code, failed.attempts) == ("131026", 1)
    assert failed.error_text == "meta error 131026 (HTTP 400): recipient cannot receive"
    info = await bus.jetstream().stream_info(ZF_DLQ.name)
    assert info.state.messages == 0


async def test_transient_errors_are_retried_in_place_then_succeed(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    async with rig(own_nats, bus, sender_db, lambda _, n: unavailable() if n < 3 else None) as r:
        first = await r.approve("+5511999990001", "one")
        second = await r.approve("+5511999990001", "two")
        await r.seen.until(lambda: {first, second} <= r.seen.sent.keys())
    assert r.seen.sent[first].attempts == 3
    # the second message to that recipient waited for the first, retries included
    assert [r.provider.per_message[m] for m in (first, second)] == [3, 3]
    first_done = r.provider.calls[2][1]
    assert all(t >= first_done for _, t in r.provider.calls[3:])


async def test_exhausted_retries_fail_and_are_dead_lettered_with_the_attempt_count(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    async with rig(own_nats, bus, sender_db, lambda _, n: unavailable(), max_attempts=3) as r:
        message = await r.approve("+5511999990001", "will fail")
        await r.seen.until(lambda: message in r.seen.failed)
        [letter] = await letters(bus, 1)
    failed = r.seen.failed[message]
    assert not failed.permanent
    assert failed.reason is FailureReason.PROVIDER_UNAVAILABLE
    assert failed.attempts == r.provider.per_message[message] == 3
    assert letter.service == "sender"
    assert letter.delivery_count == 3
    assert letter.original_subject.startswith(f"zf.sender.send_approved.v1.{r.channel.tenant_id}")
    assert letter.error_class == "zapflow.sender.errors.RetriesExhaustedError"
    assert "retries exhausted after 3 attempts" in letter.error_text


async def test_a_channel_rate_limit_lowers_its_pace_and_a_pair_limit_holds_one_recipient(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    def script(request: SendRequest, n: int) -> ProviderError | None:
        if request.to.phone == "+5511999990001" and n == 1:
            return RateLimitedError(
                "meta error 131056 (HTTP 400): rate limited",
                provider="meta",
                code="131056",
                retry_after=1.0,
            )
        return None

    async with rig(own_nats, bus, sender_db, script) as r:
        held = await r.approve("+5511999990001", "pair limited")
        others = [await r.approve(f"+55119999900{i:02d}", f"m{i}") for i in range(2, 12)]
        await r.seen.until(lambda: set(others) <= r.seen.sent.keys())
        assert held not in r.seen.sent  # only that conversation waits
        await r.seen.until(lambda: held in r.seen.sent)
    assert r.seen.sent[held].attempts == 2


async def test_sends_wait_while_the_gateway_does_not_answer(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    async with rig(own_nats, bus, sender_db, lambda _, n: None, credentials_timeout_s=0.2) as r:
        r.responder.answer = False
        message = await r.approve("+5511999990001", "hello")
        await asyncio.sleep(1.5)
        assert not r.seen.sent
        assert r.responder.asked >= 2  # asked again, not given up
        r.responder.answer = True
        await r.seen.until(lambda: message in r.seen.sent)
    assert not r.seen.failed


async def test_an_attempt_in_flight_elsewhere_is_awaited_not_repeated(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    message_id = uuid4()
    async with rig(own_nats, bus, sender_db, lambda _, n: None, provider_timeout_s=5) as r:
        conn = await asyncpg.connect(sender_db)
        try:
            # another owner recorded its attempt and is waiting for the provider's answer
            await conn.execute(
                "INSERT INTO sender.send_attempts (message_id, tenant_id, channel_id, provider,"
                " state, attempts, local_day) VALUES ($1, $2, $3, 'meta', 'sending', 1,"
                " current_date)",
                message_id,
                r.channel.tenant_id,
                r.channel.channel_id,
            )
            await r.approve("+5511999990001", "hello", message_id)
            await asyncio.sleep(1.0)
            assert message_id not in r.seen.sent
            await conn.execute(
                "UPDATE sender.send_attempts SET state = 'accepted',"
                " provider_message_id = 'wamid.elsewhere' WHERE message_id = $1",
                message_id,
            )
            await r.seen.until(lambda: message_id in r.seen.sent)
        finally:
            await conn.close()
    assert r.seen.sent[message_id].provider_message_id == "wamid.elsewhere"
    assert r.provider.per_message[message_id] == 0


async def test_an_invalid_payload_is_dead_lettered(
    own_nats: str, bus: Client, sender_db: str
) -> None:
    async with rig(own_nats, bus, sender_db, lambda _, n: None) as r:
        subject = f"zf.sender.send_approved.v1.{r.channel.tenant_id}.{r.channel.channel_id}"
        await bus.jetstream().publish(subject, b'{"not": "a send"}')
        [letter] = await letters(bus, 1)
    assert isinstance(letter, DeadLettered)
    assert letter.error_class == "zapflow.sender.worker.InvalidPayloadError"
