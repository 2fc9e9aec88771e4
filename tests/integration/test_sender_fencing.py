"""A sender replica paused past its leases (SIGSTOP, as a stalled VM or a blocked event loop) makes
no fetch and no provider call when it wakes (SIGCONT): it stops before its lease loop noticed.

Two ``zapflow-sender`` processes against their own nats-server, PostgreSQL and the simulator
provider; the test plays compliance (publishes ``SendApproved``) and the gateway (channels,
credentials). The replica owning the test's channels is paused for longer than the lease TTL
while the other one takes them over and recreates their consumers, then woken. Had it fetched
once more, it would have taken messages from the new owner's fresh consumer and held them for an
``ack_wait`` (60 s) — sent late, after newer ones; had it called the provider, the simulator
would have accepted a message twice. The provider's audit shows neither: nothing duplicated,
every recipient's messages in request order, nothing lost but what was in doubt at the pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from zapflow.contracts import headers as h
from zapflow.contracts.channels.v1 import PaceSettings
from zapflow.contracts.registry import parse_event
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.sending.v1 import SendFailed, SendSucceeded
from zapflow.contracts.streams import ZF_CHANNELS, ZF_DLQ, ZF_SENDER, ZF_SENDING
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
from zapflow.testing import DatabaseFactory, make_scratch_dir, nats_config, unique
from zapflow.testing import connect as connect_nats
from zapflow.testing.processes import BIN, ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

RECIPIENTS = tuple(f"+5511977770{i:03d}" for i in range(8))
PAUSE_S = 10.0  # longer than the lease TTL (6 s): the other replica takes over meanwhile
SENDS = 1000
PUBLISH_PER_S = 50.0  # below the channels' pace (4 x 25/s): no backlog builds
GROUP = "sender-approved"


@dataclass
class Outcomes:
    sent: dict[str, SendSucceeded] = field(default_factory=dict)
    failed: dict[str, SendFailed] = field(default_factory=dict)

    async def on_msg(self, msg: Msg) -> None:
        event = parse_event((msg.headers or {})[h.ZF_TYPE], msg.data)
        if isinstance(event, SendSucceeded):
            self.sent[str(event.message_id)] = event
        elif isinstance(event, SendFailed):
            self.failed[str(event.message_id)] = event

    def settled(self) -> int:
        return len(self.sent.keys() | self.failed.keys())


@dataclass(frozen=True)
class Pull:
    at: float
    durable: str
    client: str


@dataclass
class Pulls:
    """Every pull request sent to the sender's consumers (core NATS delivers a copy to us): who
    fetched from which consumer when. A client is told by its inbox prefix (a NUID's random
    part is fixed per connection)."""

    seen: list[Pull] = field(default_factory=list)

    async def on_msg(self, msg: Msg) -> None:
        self.seen.append(Pull(time.time(), msg.subject.rsplit(".", 1)[-1], msg.reply[:19]))

    def clients(self, durables: set[str]) -> set[str]:
        return {p.client for p in self.seen if p.durable in durables}


@dataclass
class Simulator:
    workdir: Path
    numbers: list[dict[str, str]]
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
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "numbers": self.numbers,
                    "rate_limit": None,
                    "latency": {"fixed_ms": 50},
                    "webhooks": {"enabled": False},
                    "audit": {"path": str(self.audit_path), "flush_interval_ms": 20},
                }
            )
        )
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

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = make_scratch_dir("zapflow-sender-fencing-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Stack:
    bus: Client
    sim: Simulator
    senders: list[ServiceProcess]
    chans: list[SimChannel]


@pytest.fixture
async def stack(scratch: Path, fresh_db: DatabaseFactory) -> AsyncIterator[Stack]:
    chans = channels(4)
    server = NatsServer(store_dir=scratch / "nats", config=nats_config()).start()
    bus = await connect_nats(server.url)
    await declare(bus.jetstream(), (ZF_CHANNELS, ZF_SENDING, ZF_SENDER, ZF_DLQ))
    numbers = [
        {"channel_id": c.channel_id, "phone_number_id": c.phone_number_id,
         "access_token": c.access_token}
        for c in chans
    ]  # fmt: skip
    sim = Simulator(scratch, numbers)
    env = {
        **os.environ,
        "NATS_URL": server.url,
        "DATABASE_URL": fresh_db("sender_fencing"),
        "ZF_SENDER_LOG_FORMAT": "json",
        "ZF_SENDER_PROVIDER_TIMEOUT_S": "2",
        "ZF_SENDER_IN_DOUBT_MARGIN_S": "1",
        # no status webhooks here: an in-doubt send waits this long for one, then is failed
        "ZF_SENDER_IN_DOUBT_WINDOW_S": "5",
    }
    senders = [
        ServiceProcess("zapflow-sender", env, scratch / f"sender{i}.log", "ZF_SENDER_HTTP_PORT")
        for i in range(2)
    ]
    try:
        await sim.start()
        await CredentialsResponder(bus, sim.url, chans).start()
        await register_channels(bus.jetstream(), chans, sim.url, PaceSettings(rate_per_second=25))
        for sender in senders:
            sender.start()
        for sender in senders:
            await sender.wait_ready()
        await until(lambda: balanced(senders), 20)
        yield Stack(bus, sim, senders, chans)
    finally:
        for sender in senders:
            sender.stop()
        sim.stop()
        await bus.close()
        server.stop()


async def until(predicate: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.1)


def balanced(senders: list[ServiceProcess]) -> bool:
    """Every partition owned once, and by both replicas."""
    owned = [s.owned(GROUP) for s in senders]
    return sorted(p for o in owned for p in o) == list(range(SEND_PARTITIONS)) and all(owned)


def channels(count: int) -> list[SimChannel]:
    """Channels of one tenant in ``count`` different partitions."""
    tenant = unique("t")
    chans: list[SimChannel] = []
    used: set[int] = set()
    while len(chans) < count:
        channel_id = unique("ch")
        partition = partition_of(tenant, channel_id)
        if partition not in used:
            used.add(partition)
            chans.append(SimChannel(tenant, channel_id, str(710_000_000 + len(chans))))
    return chans


async def publish_steadily(stack: Stack, sends: list[SendApproved]) -> None:
    publish = Publisher(stack.bus.jetstream())
    started = time.monotonic()
    for i, event in enumerate(sends):
        await asyncio.sleep(max(0.0, started + i / PUBLISH_PER_S - time.monotonic()))
        await publish(subject_for(event), event)


def _hash(send: SendApproved) -> str:
    content = send.request.content
    assert content.kind == "text"
    return content_hash({"type": "text", "text": {"preview_url": content.preview_url,
                                                  "body": content.body}})  # fmt: skip


def audit(sends: list[SendApproved], records: list[AuditRecord]) -> dict[str, list[str]]:
    """Lost, duplicated and out-of-order message ids, from what the provider accepted."""
    by_hash = {_hash(s): str(s.request.message_id) for s in sends}
    accepted: dict[str, list[AuditRecord]] = defaultdict(list)
    for record in records:
        accepted[by_hash[record.content_sha256]].append(record)
    lanes: dict[tuple[str, str], list[tuple[int, int, str]]] = defaultdict(list)
    for rank, send in enumerate(sends):
        found = accepted.get(str(send.request.message_id))
        if found:
            lane = (send.request.channel_id, send.request.to.address)
            lanes[lane].append((found[0].seq, rank, str(send.request.message_id)))
    disorder = [
        later_id
        for lane in lanes.values()
        for (_, rank, _), (_, later, later_id) in zip(sorted(lane), sorted(lane)[1:], strict=False)
        if later < rank
    ]
    ids = [str(s.request.message_id) for s in sends]
    return {
        "lost": [i for i in ids if i not in accepted],
        "duplicated": [i for i, found in accepted.items() if len(found) > 1],
        "out_of_order": disorder,
    }


async def test_a_replica_paused_past_its_leases_neither_fetches_nor_sends_when_it_wakes(
    stack: Stack,
) -> None:
    chans = stack.chans
    outcomes = Outcomes()
    await stack.bus.subscribe("zf.sending.*.v1.>", cb=outcomes.on_msg)
    pulls = Pulls()
    await stack.bus.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{ZF_SENDER.name}.>", cb=pulls.on_msg)
    ours = {partition_of(c.tenant_id, c.channel_id): c.channel_id for c in chans}
    victim = max(stack.senders, key=lambda s: len(ours.keys() & s.owned(GROUP)))
    victim_channels = {ours[p] for p in ours.keys() & victim.owned(GROUP)}
    assert victim_channels
    sends = [
        approved_text(chans[i % len(chans)], RECIPIENTS[(i // len(chans)) % len(RECIPIENTS)],
                      f"fence {i} {unique('x')}")
        for i in range(SENDS)
    ]  # fmt: skip
    # approvals keep arriving through the pause and the waking (as compliance would send them),
    # so the new owner's consumer always has fresh messages a stray fetch could take
    publishing = asyncio.create_task(publish_steadily(stack, sends))

    def sent_on_victim_channels(after: float = 0.0) -> int:
        return sum(
            1
            for r in stack.sim.records()
            if r.channel_id in victim_channels and r.ts.timestamp() > after
        )

    await until(lambda: sent_on_victim_channels() >= 60, 30)

    victim_inboxes = pulls.clients({f"{GROUP}-p{p}" for p in victim.owned(GROUP)})
    victim.pause()
    paused = time.time()
    # the survivor took the channels over (after the lease TTL) and sends them
    await until(lambda: sent_on_victim_channels(after=paused + 8) >= 20, 30)
    await asyncio.sleep(max(0.0, paused + PAUSE_S - time.time()))
    victim.resume()
    woke = time.time()
    await publishing
    # well under the 60 s ack wait a message stolen from the new owner would take
    await until(lambda: outcomes.settled() == len(sends), 30)
    await asyncio.sleep(1)  # anything the woken replica still sent would be in the audit now
    records = stack.sim.records()

    found = audit(sends, records)
    in_doubt = {m for m, f in outcomes.failed.items() if f.error_code == "in_doubt"}
    why = _explain(found, sends, records, paused, woke)
    assert found["duplicated"] == [], why
    assert found["out_of_order"] == [], why
    assert set(found["lost"]) <= in_doubt  # only what was in the provider's hands at the pause
    assert set(outcomes.failed) == in_doubt
    assert len(in_doubt) <= len(victim_channels) * len(RECIPIENTS)
    # no fetch from the woken replica until it took a partition again (after the rebalance)
    retaken = min(victim.acquired_after(woke), default=float("inf"))
    stray = [p for p in pulls.seen if p.client in victim_inboxes and woke < p.at < retaken]
    assert stray == []
    assert all(t > woke for t in victim.acquired_after(paused))


def _explain(
    found: dict[str, list[str]],
    sends: list[SendApproved],
    records: list[AuditRecord],
    paused: float,
    woke: float,
) -> str:
    """The provider's records of the duplicated and out-of-order messages' lanes, with times
    relative to the pause and the waking."""
    wrong = set(found["duplicated"]) | set(found["out_of_order"])
    by_hash = {_hash(s): s for s in sends}
    lanes = {
        (s.request.channel_id, s.request.to.address)
        for s in sends
        if str(s.request.message_id) in wrong
    }
    lines = [f"paused at 0, woke at {woke - paused:.2f}"]
    for r in records:
        send = by_hash[r.content_sha256]
        if (send.request.channel_id, send.request.to.address) in lanes:
            mark = "*" if str(send.request.message_id) in wrong else " "
            lines.append(f"{mark} {r.ts.timestamp() - paused:8.3f} seq={r.seq} "
                         f"{send.request.to.address} {send.request.content.body[:12]}")  # type: ignore[union-attr]  # fmt: skip
    return "\n".join(lines)
