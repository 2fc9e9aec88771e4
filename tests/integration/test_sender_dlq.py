"""``zapflow dlq list | show | replay`` on the sender's dead letters, end to end.

The sender runs in-process with a provider that fails until the test heals it: the message runs
out of attempts, is failed and dead-lettered; the CLI lists and shows it, and replaying it sends
it again, once, even when the replay is repeated.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import SecretStr
from typer.testing import CliRunner

from zapflow.cli.dlq_cmd import app as dlq_app
from zapflow.cli.dlq_cmd import republish_subject
from zapflow.contracts import headers as h
from zapflow.contracts.channels.v1 import ChannelSettings, PaceSettings
from zapflow.contracts.dlq.v1 import DeadLettered
from zapflow.contracts.model import DeliveryStatus
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.registry import parse_event
from zapflow.contracts.sending.v1 import SendFailed, SendRequest, SendSucceeded
from zapflow.contracts.streams import ZF_CHANNELS, ZF_DLQ, ZF_SENDER, ZF_SENDING
from zapflow.contracts.subjects import subject_for
from zapflow.embedded import NatsServer, free_port
from zapflow.providers import SendResult
from zapflow.providers.errors import ProviderUnavailableError
from zapflow.runtime.broker import Publisher, declare
from zapflow.sender.app import Overrides, create_service
from zapflow.sender.settings import Settings
from zapflow.sender.testing import (
    CredentialsResponder,
    SimChannel,
    approved_text,
    register_channels,
)
from zapflow.testing import DatabaseFactory, make_scratch_dir, nats_config, unique
from zapflow.testing import connect as connect_nats

pytestmark = pytest.mark.integration


@dataclass
class HealableProvider:
    healthy: bool = False
    calls: int = 0

    async def send(
        self,
        settings: ChannelSettings,
        credentials: ChannelCredentialsReply,
        request: SendRequest,
        *,
        before_write: Callable[[], Awaitable[None]],
    ) -> SendResult:
        await before_write()
        self.calls += 1
        if not self.healthy:
            raise ProviderUnavailableError("meta HTTP 503: server error", provider="meta")
        return SendResult(f"wamid.{request.message_id.hex}", DeliveryStatus.QUEUED)


@dataclass
class Outcomes:
    sent: set[UUID] = field(default_factory=set)
    failed: set[UUID] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Msg) -> None:
        event = parse_event((msg.headers or {})[h.ZF_TYPE], msg.data)
        if isinstance(event, SendSucceeded):
            self.sent.add(event.message_id)
        elif isinstance(event, SendFailed):
            self.failed.add(event.message_id)
        self.changed.set()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    scratch = make_scratch_dir("zapflow-sender-dlq-")
    server = NatsServer(store_dir=scratch, config=nats_config()).start()
    yield server
    server.stop()
    shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await connect_nats(nats_server.url)
    await declare(client.jetstream(), (ZF_CHANNELS, ZF_SENDING, ZF_SENDER, ZF_DLQ))
    yield client
    await client.close()


async def cli(url: str, *args: str) -> str:
    """Run ``zapflow dlq <args>`` (in a thread: the command runs its own event loop)."""
    result = await asyncio.to_thread(
        CliRunner().invoke, dlq_app, list(args), env={"NATS_URL": url}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


async def until(outcomes: Outcomes, check: object) -> None:
    async with asyncio.timeout(15):
        while not check():  # type: ignore[operator]
            outcomes.changed.clear()
            await outcomes.changed.wait()


async def test_list_show_and_replay_a_dead_lettered_send(
    nats_server: NatsServer, bus: Client, fresh_db: DatabaseFactory, tmp_path: Path
) -> None:
    channel = SimChannel(unique("t"), unique("c"), "123")
    await CredentialsResponder(bus, "http://127.0.0.1:9", [channel]).start()
    await register_channels(
        bus.jetstream(), [channel], "http://127.0.0.1:9", PaceSettings(rate_per_second=50)
    )
    outcomes = Outcomes()
    await bus.subscribe("zf.sending.*.v1.>", cb=outcomes.on_msg)
    provider = HealableProvider()
    settings = Settings(
        nats_url=nats_server.url,
        database_url=SecretStr(fresh_db("sender_dlq")),
        http_port=free_port(),
        max_attempts=2,
        retry_base_s=0.05,
    )
    send = approved_text(channel, "+5511999990001", "hello")
    message = send.request.message_id
    async with create_service(settings, Overrides(provider=provider)).running():
        await Publisher(bus.jetstream())(subject_for(send), send)
        await until(outcomes, lambda: message in outcomes.failed)
        async with asyncio.timeout(10):
            while True:  # the dead letter follows the SendFailed
                listed = await cli(nats_server.url, "list")
                if "1 of 1 dead letters" in listed:
                    break
                await asyncio.sleep(0.1)
        dead_letter_id = listed.splitlines()[1].split()[0]
        assert " sender " in listed.splitlines()[1]

        shown = json.loads(await cli(nats_server.url, "show", dead_letter_id[:8]))
        assert shown["delivery_count"] == 2
        assert shown["republish_subject"] == subject_for(send)  # without the partition token
        assert "payload" not in shown
        with_payload = json.loads(await cli(nats_server.url, "show", dead_letter_id, "--payload"))
        assert with_payload["payload"]["request"]["message_id"] == str(message)

        provider.healthy = True
        assert "1 replayed" in await cli(nats_server.url, "replay", dead_letter_id)
        await until(outcomes, lambda: message in outcomes.sent)
        assert "0 replayed" in await cli(nats_server.url, "replay", "--all")  # already replayed
        await cli(nats_server.url, "replay", dead_letter_id)  # again: deduplicated
        await asyncio.sleep(0.5)
        listed = await cli(nats_server.url, "list", "--service", "sender")
    assert provider.calls == 3  # two failed attempts, one after the replay
    assert f"{dead_letter_id}" in listed
    assert " yes " in listed.splitlines()[1]


def test_republish_subject_drops_only_the_partition_token() -> None:
    letter = DeadLettered(
        tenant_id="t1",
        service="sender",
        original_subject="zf.sender.send_approved.v1.t1.c1.7",
        original_stream="ZF_SENDER",
        original_payload_b64="",
        error_class="x",
        error_text="x",
        delivery_count=1,
        failed_at="2025-01-01T00:00:00Z",  # type: ignore[arg-type]
    )
    assert republish_subject(letter) == "zf.sender.send_approved.v1.t1.c1"
    plain = letter.model_copy(
        update={
            "original_subject": "zf.inbound.webhook_received.v1.t1.c1",
            "original_stream": "ZF_INBOUND",
        }
    )
    assert republish_subject(plain) == "zf.inbound.webhook_received.v1.t1.c1"
