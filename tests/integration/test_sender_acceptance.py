"""Sender acceptance: two ``zapflow-sender`` processes against NATS, PostgreSQL and the simulator.

The test plays compliance (publishes ``SendApproved``) and the gateway (registers channels on
``ZF_CHANNELS`` and answers ``CHANNEL_CREDENTIALS``). What the provider accepted is read from the
simulator's audit log and checked independently of what the sender reports: every message's text
is unique, so its content hash identifies it even when the sender never learned its provider id.

* order: each (channel, recipient) receives its messages in request order;
* exactly once: no message accepted twice, none lost;
* hand-over: a SIGKILLed replica's channels continue on the other one within 10 s, and the sends
  it left in doubt are resolved by the provider's status webhooks (the simulator echoes our id in
  ``biz_opaque_callback_data``; a ``zapflow-ingest`` process turns them into status events): none
  lost, none duplicated, nothing dead-lettered;
* pace: no 1 s window above rate + burst, at least 98 % of the rate achieved;
* rate limits: 130429 storms slow the channel down and lose nothing;
* isolation: a channel that cannot send (paced at 0.001/s, or refused with 429 for ever) with
  more than its partition's ``max_ack_pending`` queued does not slow another channel of that
  partition below its pace.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from zapflow.contracts import headers as h
from zapflow.contracts.channels.v1 import PaceSettings
from zapflow.contracts.dlq.v1 import DeadLettered
from zapflow.contracts.envelope import utcnow
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.registry import parse_event
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.sending.v1 import SendFailed, SendRequested, SendSucceeded
from zapflow.contracts.streams import (
    SENDER_APPROVED,
    ZF_CHANNELS,
    ZF_DLQ,
    ZF_INBOUND,
    ZF_MESSAGES,
    ZF_SENDER,
    ZF_SENDING,
)
from zapflow.contracts.subjects import SEND_PARTITIONS, subject_for
from zapflow.embedded import NatsServer, free_port
from zapflow.runtime.broker import Publisher, declare
from zapflow.sender.testing import (
    CredentialsResponder,
    SimChannel,
    approved_text,
    partition_of,
    register_channels,
)
from zapflow.simulator import AuditRecord
from zapflow.simulator.auditlog import content_hash, read_file
from zapflow.simulator.testing import serve
from zapflow.testing import DatabaseFactory, make_scratch_dir, nats_config, unique
from zapflow.testing import connect as connect_nats

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
RECIPIENTS = tuple(f"+5511988880{i:03d}" for i in range(10))


# -- the stack -------------------------------------------------------------------------------


@dataclass
class SenderProcess:
    name: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    service: str = "sender"

    def start(self) -> None:
        env = {**self.env, f"ZF_{self.service.upper()}_HTTP_PORT": str(self.port)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([BIN / f"zapflow-{self.service}"], env=env, stderr=out)

    async def wait_ready(self, within_s: float = 30.0) -> None:
        assert self.proc is not None
        async with httpx.AsyncClient() as client, asyncio.timeout(within_s):
            while True:
                assert self.proc.poll() is None, self.log.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    ready = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                    if ready.status_code == 200:
                        return
                await asyncio.sleep(0.1)

    def owned(self) -> set[int]:
        """Partitions this replica holds now, from its JSON log."""
        owned: set[int] = set()
        for line in self.log.read_text().splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("msg") == "lease acquired":
                owned.add(entry["partition"])
            elif entry.get("msg") in ("lease released", "lease lost"):
                owned.discard(entry.get("partition", -1))
        return owned

    def logged(self, message: str) -> int:
        """How many JSON log lines say ``message``."""
        lines = self.log.read_text().splitlines()
        return sum(
            1 for line in lines if line.startswith("{") and json.loads(line)["msg"] == message
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Outcomes:
    sent: dict[str, SendSucceeded] = field(default_factory=dict)
    failed: dict[str, SendFailed] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_msg(self, msg: Msg) -> None:
        event = parse_event((msg.headers or {})[h.ZF_TYPE], msg.data)
        if isinstance(event, SendSucceeded):
            self.sent[str(event.message_id)] = event
        elif isinstance(event, SendFailed):
            self.failed[str(event.message_id)] = event
        self.changed.set()

    def settled(self) -> int:
        return len(self.sent.keys() | self.failed.keys())


@dataclass
class Stack:
    nats_url: str
    dsn: str
    workdir: Path
    bus: Client
    senders: list[SenderProcess] = field(default_factory=list)
    others: list[SenderProcess] = field(default_factory=list)

    def sender(self, **env: str) -> SenderProcess:
        base = {
            **os.environ,
            "NATS_URL": self.nats_url,
            "DATABASE_URL": self.dsn,
            "ZF_SENDER_LOG_FORMAT": "json",
            "ZF_SENDER_PROVIDER_TIMEOUT_S": "2",
            "ZF_SENDER_IN_DOUBT_MARGIN_S": "1",
            **env,
        }
        name = f"sender{len(self.senders)}"
        process = SenderProcess(name, base, self.workdir / f"{name}.log")
        self.senders.append(process)
        return process

    async def start_ingest(self) -> SenderProcess:
        """``zapflow-ingest``: provider webhooks become status events the sender can read."""
        env = {
            **os.environ,
            "NATS_URL": self.nats_url,
            "DATABASE_URL": self.dsn,
            "ZF_INGEST_LOG_FORMAT": "json",
            "ZF_INGEST_MEDIA_DIR": str(self.workdir / "media"),
        }
        ingest = SenderProcess("ingest", env, self.workdir / "ingest.log", service="ingest")
        self.others.append(ingest)
        ingest.start()
        await ingest.wait_ready()
        return ingest

    async def start_senders(self, count: int, **env: str) -> list[SenderProcess]:
        started = [self.sender(**env) for _ in range(count)]
        for process in started:
            process.start()
        for process in started:
            await process.wait_ready()
        async with asyncio.timeout(15):  # leases balanced: every partition owned once, fairly
            while True:
                if balanced(started):
                    return started
                await asyncio.sleep(0.2)


def balanced(senders: list[SenderProcess]) -> bool:
    owned = [s.owned() for s in senders]
    fair = SEND_PARTITIONS // len(senders)
    every = sorted(p for partitions in owned for p in partitions)
    return every == list(range(SEND_PARTITIONS)) and all(len(o) >= fair for o in owned)


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = make_scratch_dir("zapflow-sender-acceptance-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def stack(scratch: Path, fresh_db: DatabaseFactory) -> AsyncIterator[Stack]:
    server = NatsServer(store_dir=scratch / "nats", config=nats_config()).start()
    bus = await connect_nats(server.url)
    streams = (ZF_CHANNELS, ZF_SENDING, ZF_SENDER, ZF_DLQ, ZF_INBOUND, ZF_MESSAGES)
    await declare(bus.jetstream(), streams)
    built = Stack(server.url, fresh_db("sender_acceptance"), scratch, bus)
    try:
        yield built
    finally:
        for process in (*built.senders, *built.others):
            process.stop()
        await bus.close()
        server.stop()


@dataclass
class SimulatorProcess:
    """``zapflow-simulator serve`` in a process of its own, so its clock is not the test's."""

    workdir: Path
    settings: dict[str, Any]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audit_path(self) -> Path:
        return self.workdir / "audit.jsonl"

    def spawn(self) -> None:
        config = self.workdir / "simulator.json"
        settings = {
            "port": self.port,
            "rate_limit": None,
            "webhooks": {"enabled": False},
            "audit": {"path": str(self.audit_path), "flush_interval_ms": 20, "fsync": False},
            **self.settings,
        }
        config.write_text(json.dumps(settings))
        with (self.workdir / "simulator.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [BIN / "zapflow-simulator", "serve", "--config", str(config)], stderr=out
            )

    async def start(self) -> None:
        self.spawn()
        async with httpx.AsyncClient() as client, asyncio.timeout(20):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)

    def records(self) -> list[AuditRecord]:
        return read_file(self.audit_path) if self.audit_path.exists() else []

    async def settled_records(self) -> list[AuditRecord]:
        """The audit once it stopped growing (it is flushed every 20 ms)."""
        seen = -1
        while True:
            records = self.records()
            if len(records) == seen:
                return records
            seen = len(records)
            await asyncio.sleep(0.3)

    async def outcomes(self) -> Counter[str]:
        async with httpx.AsyncClient() as client:
            numbers = (await client.get(f"{self.url}/_stats")).json()["numbers"]
        total: Counter[str] = Counter()
        for counts in numbers.values():
            total.update({k: v for k, v in counts.items() if k != "max_per_1s"})
        return total

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


@contextlib.asynccontextmanager
async def simulated(
    stack: Stack,
    chans: list[SimChannel],
    *,
    number_options: dict[str, dict[str, Any]] | None = None,
    **settings: Any,
) -> AsyncIterator[SimulatorProcess]:
    numbers = [
        {
            "channel_id": c.channel_id,
            "phone_number_id": c.phone_number_id,
            "access_token": c.access_token,
            **(number_options or {}).get(c.channel_id, {}),
        }
        for c in chans
    ]
    sim = SimulatorProcess(stack.workdir, {"numbers": numbers, **settings})
    await sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def spread_channels(count: int, avoid: set[int] | None = None) -> list[SimChannel]:
    """Channels of one tenant in ``count`` different partitions."""
    tenant = unique("t")
    chans: list[SimChannel] = []
    used = set(avoid or ())
    while len(chans) < count:
        channel_id = unique("ch")
        partition = partition_of(tenant, channel_id)
        if partition not in used:
            used.add(partition)
            chans.append(SimChannel(tenant, channel_id, str(700_000_000 + len(chans))))
    return chans


def same_partition(count: int) -> list[SimChannel]:
    """``count`` channels of one tenant whose sends land in one partition."""
    tenant = unique("t")
    by_partition: dict[int, list[str]] = defaultdict(list)
    while True:
        channel_id = unique("ch")
        found = by_partition[partition_of(tenant, channel_id)]
        found.append(channel_id)
        if len(found) == count:
            return [SimChannel(tenant, c, str(710_000_000 + i)) for i, c in enumerate(found)]


async def prepare(
    stack: Stack,
    sim: SimulatorProcess,
    chans: list[SimChannel],
    pace: PaceSettings,
    *,
    paces: dict[str, PaceSettings] | None = None,
) -> Outcomes:
    await CredentialsResponder(stack.bus, sim.url, chans).start()
    for chan in chans:
        chan_pace = (paces or {}).get(chan.channel_id, pace)
        await register_channels(stack.bus.jetstream(), [chan], sim.url, chan_pace)
    outcomes = Outcomes()
    await stack.bus.subscribe("zf.sending.*.v1.>", cb=outcomes.on_msg)
    return outcomes


async def publish_requests(stack: Stack, sends: list[SendApproved]) -> None:
    """The requests behind ``sends``, as the gateway publishes them (ingest records them)."""
    publish = Publisher(stack.bus.jetstream())
    for send in sends:
        event = SendRequested(tenant_id=send.tenant_id, request=send.request)
        await publish(subject_for(event), event)


@contextlib.asynccontextmanager
async def webhook_gateway(stack: Stack, chans: list[SimChannel]) -> AsyncIterator[str]:
    """Plays the gateway's webhook endpoint: each provider webhook is stored as the raw event
    ingest reads (what the gateway does once the signature checked) and answered 200 only once
    JetStream has it. Yields the base URL to give the simulator as ``gateway_url``."""
    tenants = {c.channel_id: c.tenant_id for c in chans}
    publish = Publisher(stack.bus.jetstream())

    async def webhook(request: Request) -> Response:
        channel = request.path_params["channel"]
        event = WebhookReceived(
            tenant_id=tenants[channel],
            provider=request.path_params["provider"],
            channel_id=channel,
            received_at=utcnow(),
            content_type=request.headers.get("content-type"),
            body_b64=base64.b64encode(await request.body()).decode(),
        )
        await publish(subject_for(event), event)
        return Response(status_code=200)

    route = Route("/webhooks/{provider}/{channel}", webhook, methods=["POST"])
    async with serve(Starlette(routes=[route])) as url:
        yield url


async def publish_all(stack: Stack, sends: list[SendApproved]) -> None:
    publish = Publisher(stack.bus.jetstream())
    for event in sends:
        await publish(subject_for(event), event)


def interleaved(chans: list[SimChannel], count: int) -> list[SendApproved]:
    """``count`` messages round-robin over channels and the 10 recipients, each text unique."""
    sends = []
    for i in range(count):
        channel = chans[i % len(chans)]
        recipient = RECIPIENTS[(i // len(chans)) % len(RECIPIENTS)]
        sends.append(approved_text(channel, recipient, f"msg {i} {unique('x')}"))
    return sends


async def wait_settled(outcomes: Outcomes, count: int, within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while outcomes.settled() < count:
            outcomes.changed.clear()
            await outcomes.changed.wait()


# -- the audit -------------------------------------------------------------------------------


@dataclass
class Audit:
    """What the provider accepted, matched to the requests by content."""

    accepted: dict[str, list[AuditRecord]]
    lost: list[str]
    duplicated: list[str]
    out_of_order: list[str]

    @classmethod
    def of(cls, sends: list[SendApproved], records: list[AuditRecord]) -> Audit:
        by_hash = {_hash(s): str(s.request.message_id) for s in sends}
        accepted: dict[str, list[AuditRecord]] = defaultdict(list)
        for record in records:
            accepted[by_hash[record.content_sha256]].append(record)
        ids = [str(s.request.message_id) for s in sends]
        lanes: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for rank, send in enumerate(sends):
            first = accepted.get(str(send.request.message_id))
            if first:
                lane = (send.request.channel_id, send.request.to.address)
                lanes[lane].append((first[0].seq, rank))
        disorder = [
            ids[rank]
            for lane in lanes.values()
            for (_, rank), (_, later) in zip(sorted(lane), sorted(lane)[1:], strict=False)
            if later < rank
        ]
        return cls(
            accepted=dict(accepted),
            lost=[i for i in ids if i not in accepted],
            duplicated=[i for i, found in accepted.items() if len(found) > 1],
            out_of_order=disorder,
        )


def _hash(send: SendApproved) -> str:
    content = send.request.content
    assert content.kind == "text"
    body = {"preview_url": content.preview_url, "body": content.body}
    return content_hash({"type": "text", "text": body})


def max_per_second(records: list[AuditRecord]) -> int:
    times = sorted(r.ts.timestamp() for r in records)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def dead_lettered(stack: Stack) -> set[str]:
    """Message ids of the sender's dead letters."""
    js = stack.bus.jetstream()
    sub = await js.subscribe("zf.dlq.dead_lettered.v1.>", stream=ZF_DLQ.name, ordered_consumer=True)
    found: set[str] = set()
    pending = (await js.stream_info(ZF_DLQ.name)).state.messages
    for _ in range(pending):
        msg = await sub.next_msg(timeout=5)
        record = DeadLettered.model_validate_json(msg.data)
        payload = SendApproved.model_validate_json(base64.b64decode(record.original_payload_b64))
        found.add(str(payload.request.message_id))
    await sub.unsubscribe()
    return found


def in_doubt(outcomes: Outcomes) -> set[str]:
    return {m for m, f in outcomes.failed.items() if f.error_code == "in_doubt"}


# -- the tests -------------------------------------------------------------------------------


async def test_two_replicas_keep_order_per_recipient_with_no_duplicate_and_no_loss(
    stack: Stack,
) -> None:
    chans = spread_channels(4)
    pace = PaceSettings(rate_per_second=60, burst=5)
    async with simulated(stack, chans, latency={"fixed_ms": 50}) as sim:
        outcomes = await prepare(stack, sim, chans, pace)
        await stack.start_senders(2)
        sends = interleaved(chans, 1000)
        await publish_all(stack, sends)
        await wait_settled(outcomes, len(sends), within_s=40)
        records = await sim.settled_records()
    audit = Audit.of(sends, records)
    assert not outcomes.failed
    assert (audit.lost, audit.duplicated, audit.out_of_order) == ([], [], [])
    assert {e.provider_message_id for e in outcomes.sent.values()} == {r.wamid for r in records}
    assert {p for s in stack.senders for p in s.owned()} == set(range(SEND_PARTITIONS))
    assert all(s.owned() for s in stack.senders)  # both replicas worked


@pytest.mark.timeout(150)  # a real ingest and the in-doubt window (20 s) besides the run
async def test_a_sigkilled_replica_hands_over_within_10s_and_loses_or_duplicates_nothing(
    stack: Stack,
) -> None:
    chans = spread_channels(6)
    pace = PaceSettings(rate_per_second=40, burst=5)
    await stack.start_ingest()
    async with (
        webhook_gateway(stack, chans) as gateway,
        simulated(
            stack,
            chans,
            latency={"fixed_ms": 100},  # calls in flight when the replica dies: in doubt
            gateway_url=gateway,
            webhooks={"enabled": True},  # statuses echo our id (biz_opaque_callback_data)
        ) as sim,
    ):
        outcomes = await prepare(stack, sim, chans, pace)
        # the window must outlast the hand-over (~8 s): statuses of later sends of the victim's
        # channels are the evidence that lets the sends their provider never took be resent
        victim, survivor = await stack.start_senders(2, ZF_SENDER_IN_DOUBT_WINDOW_S="20")
        victim_channels = {
            c.channel_id for c in chans if partition_of(c.tenant_id, c.channel_id) in victim.owned()
        }
        assert victim_channels, "the victim owns none of the channels"
        sends = interleaved(chans, 1000)
        await publish_requests(stack, sends)
        await publish_all(stack, sends)
        async with asyncio.timeout(20):
            while True:  # the audit is a file another process appends to
                if len(sim.records()) >= 300:
                    break
                await asyncio.sleep(0.05)
        victim.kill()
        killed_at = time.time()
        await wait_settled(outcomes, len(sends), within_s=90)
        records = await sim.settled_records()
    audit = Audit.of(sends, records)
    assert (audit.lost, audit.duplicated, audit.out_of_order) == ([], [], [])
    assert not outcomes.failed  # nothing failed as in doubt...
    assert await dead_lettered(stack) == set()  # ...nor dead-lettered
    assert {e.provider_message_id for e in outcomes.sent.values()} == {r.wamid for r in records}
    # the calls the victim had in flight were in doubt, and were resolved: the provider named
    # those it took (never resent), the others were sent again once its window passed
    in_doubt = survivor.logged("send in doubt after a lost owner")
    named = survivor.logged("in-doubt send named by a provider status: sent")
    resent = survivor.logged("in-doubt send not named by the provider in its window: resent")
    assert in_doubt >= 1, "the kill left nothing in doubt"
    assert named + resent == in_doubt
    for channel_id in victim_channels:
        after = [r.ts.timestamp() for r in records if r.channel_id == channel_id]
        resumed = min(t for t in after if t > killed_at)
        assert resumed - killed_at < 10.0, channel_id
    assert survivor.owned() == set(range(SEND_PARTITIONS))


async def test_pace_holds_rate_plus_burst_and_reaches_98_percent_of_the_rate(
    stack: Stack,
) -> None:
    chans = spread_channels(2)
    rate, burst = 80, 10
    pace = PaceSettings(rate_per_second=rate, burst=burst)
    async with simulated(stack, chans, latency={"fixed_ms": 200}) as sim:
        outcomes = await prepare(stack, sim, chans, pace)
        await stack.start_senders(2)
        per_channel = 8 * rate
        sends = [
            approved_text(c, f"+55119{(i * 7919) % 10**8:08d}", f"p {i} {unique('x')}")
            for i in range(per_channel)
            for c in chans
        ]
        await publish_all(stack, sends)
        await wait_settled(outcomes, len(sends), within_s=30)
        records = await sim.settled_records()
    assert len(records) == len(sends)
    for channel in chans:
        mine = sorted(r.ts.timestamp() for r in records if r.channel_id == channel.channel_id)
        most = max_per_second([r for r in records if r.channel_id == channel.channel_id])
        assert most <= rate + burst
        achieved = (len(mine) - 1) / (mine[-1] - mine[0])
        assert achieved >= 0.98 * rate, achieved


async def test_130429_storms_slow_the_channel_and_lose_nothing(stack: Stack) -> None:
    chans = spread_channels(2)
    pace = PaceSettings(rate_per_second=80, burst=10)
    limit = {"rate": 30, "burst": 10}  # the number's real throughput: below the pace
    storm = {"duration_s": 3, "start_after_s": 6}
    async with simulated(
        stack, chans, latency={"fixed_ms": 50}, rate_limit=limit, storm=storm
    ) as sim:
        outcomes = await prepare(stack, sim, chans, pace)
        await stack.start_senders(2)
        sends = interleaved(chans, 600)
        await publish_all(stack, sends)
        await wait_settled(outcomes, len(sends), within_s=50)
        records = await sim.settled_records()
        refused = await sim.outcomes()
    audit = Audit.of(sends, records)
    assert not outcomes.failed
    assert (audit.lost, audit.duplicated, audit.out_of_order) == ([], [], [])
    # without AIMD a channel paced at 80/s against 30/s would be refused ~60 % of the time
    assert refused["rate_limited"] < 0.25 * len(records), refused
    assert refused["storm_rate_limited"] > 0


@pytest.mark.timeout(150)
@pytest.mark.parametrize("stuck_by", ["pace", "provider"])
async def test_a_channel_that_cannot_send_does_not_slow_another_of_its_partition(
    stack: Stack, stuck_by: str
) -> None:
    stuck, healthy = same_partition(2)
    rate, burst = 20, 2
    paces = {healthy.channel_id: PaceSettings(rate_per_second=rate, burst=burst)}
    options: dict[str, dict[str, Any]] = {}
    if stuck_by == "pace":  # one send per 1,000 s: none in this test
        paces[stuck.channel_id] = PaceSettings(rate_per_second=0.001)
    else:  # paced fast, but its provider answers 429 (130429) to all but the first send
        paces[stuck.channel_id] = PaceSettings(rate_per_second=50, burst=5)
        options[stuck.channel_id] = {"rate_limit": {"rate": 0.000_01, "burst": 1}}
    queued = SENDER_APPROVED[0].max_ack_pending * 3 // 2  # more than its partition may hold
    async with simulated(
        stack,
        [stuck, healthy],
        number_options=options,
        errors={"rate_limit_http_status": 429},
        latency={"fixed_ms": 20},
    ) as sim:
        outcomes = await prepare(
            stack, sim, [stuck, healthy], paces[healthy.channel_id], paces=paces
        )
        await stack.start_senders(1)
        blocked = [
            approved_text(stuck, RECIPIENTS[i % 10], f"s {i} {unique('x')}") for i in range(queued)
        ]
        flowing = [
            approved_text(healthy, RECIPIENTS[i % 10], f"h {i} {unique('x')}") for i in range(200)
        ]
        await publish_all(stack, blocked)  # all ahead of the healthy channel's in the stream
        await publish_all(stack, flowing)
        async with asyncio.timeout(60):
            while len(outcomes.sent.keys() & {str(s.request.message_id) for s in flowing}) < 200:
                outcomes.changed.clear()
                await outcomes.changed.wait()
        settled = await sim.settled_records()
        records = [r for r in settled if r.channel_id == healthy.channel_id]
        stuck_sent = sum(1 for r in settled if r.channel_id == stuck.channel_id)
        parked = await parked_count(stack, stuck)
    audit = Audit.of(flowing, records)
    assert (audit.lost, audit.duplicated, audit.out_of_order) == ([], [], [])
    times = sorted(r.ts.timestamp() for r in records)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= 0.9 * rate, achieved  # its full pace, all along:
    for start in range(int(times[0]), int(times[-1]) - 2, 2):  # every full 2 s window
        window = sum(1 for t in times if start + 1 <= t < start + 3)
        assert window >= 0.6 * 2 * rate, (start, window)
    assert max_per_second(records) <= rate + burst
    # the stuck channel's backlog waits in PostgreSQL: all but its memory budget (at most 250)
    # and what it sent (the provider variant accepts its first send)
    assert parked >= queued - 250 - stuck_sent


async def parked_count(stack: Stack, channel: SimChannel) -> int:
    conn = await asyncpg.connect(stack.dsn)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM sender.parked_sends WHERE tenant_id = $1 AND channel_id = $2",
            channel.tenant_id,
            channel.channel_id,
        )
    finally:
        await conn.close()
    return int(count)
