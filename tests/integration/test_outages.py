"""Outages are waited out, not dead-lettered: PostgreSQL or nats-server away for minutes under load.

The whole system runs as ``zapflow up`` starts it (six services, the simulator provider, the
demo tenant) on a nats-server and a PostgreSQL of the test's own, so the test can stop them.
Send requests for the demo channel arrive steadily on ``ZF_SENDING`` (as the gateway or the
dispatcher would publish them) before, during and after the outage; they go through
compliance, the sender and the simulator, and ingest records each in its conversation.

After the server comes back, everything settles: ``zapflow audit`` finds every request accepted
by the provider exactly once and in order per recipient, ingest recorded each as sent (or
further), no service wrote a dead letter, no service died, and every service is ready again.
One run of each scenario; ``OUTAGE_S`` is how long the server stays away. A restarted
nats-server answers before its JetStream is back (recovering a large store takes a while; a
cluster first elects a meta leader): the last ``RECOVERING_S`` of the NATS outage are played
by a server without JetStream on the same port, which refuses every JetStream request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from nats.aio.client import Client

from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import TemplateContent
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested
from zapflow.contracts.streams import ZF_DLQ
from zapflow.contracts.subjects import subject_for
from zapflow.contracts.types import SERVICES
from zapflow.embedded import NatsServer, PostgresServer, find_nats_server_binary, free_port
from zapflow.embedded.ports import is_accepting
from zapflow.runtime.broker import Publisher
from zapflow.testing import connect as connect_nats
from zapflow.testing import make_scratch_dir, nats_config, unique
from zapflow.testing.processes import BIN

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

OUTAGE_S: Final = 180.0
"""How long PostgreSQL, or JetStream, stays away."""
RECOVERING_S: Final = 30.0
"""The last part of the NATS outage: the server answers, JetStream does not yet (as while it
recovers its store, or a cluster elects its meta leader): every JetStream request is refused."""
WARM_S: Final = 15.0
AFTER_S: Final = 10.0
LOAD_PER_S: Final = 4.0
TENANT: Final = "demo"
CHANNEL: Final = "demo-meta"
RECIPIENTS: Final = tuple(f"+55119877{i:05d}" for i in range(12))


@dataclass
class System:
    home: Path
    env: dict[str, str]
    nats: NatsServer
    pg: PostgresServer
    dsn: str
    up: subprocess.Popen[bytes]
    log: Path
    bus: Client
    requested: list[UUID] = field(default_factory=list)

    def alive(self) -> None:
        """No process of the stack exited (``zapflow up`` stops everything when one does)."""
        assert self.up.poll() is None, self.log.read_text(errors="replace")[-5000:]
        exited = [line for line in self.log.read_text(errors="replace").splitlines()
                  if "exited with code" in line]  # fmt: skip
        assert exited == [], exited

    async def load(self, count: int) -> None:
        """``count`` send requests at ``LOAD_PER_S``; a publish that fails (NATS away) is
        retried with the same event, so JetStream stores each once."""
        publish = Publisher(self.bus.jetstream(), timeout=2.0)
        started = time.monotonic()
        run = unique("o")
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i / LOAD_PER_S - time.monotonic()))
            event = _request(run, i)
            while True:
                try:
                    await publish(subject_for(event), event)
                    break
                except Exception:  # NATS away: the same event again, until stored
                    await asyncio.sleep(0.5)
            self.requested.append(event.request.message_id)

    def audit(self) -> dict[str, Any]:
        done = subprocess.run(
            [BIN / "zapflow", "audit", "--log", str(self.home / "simulator" / "audit.jsonl"),
             "--tenant", TENANT, "--json"],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if not done.stdout.startswith("{"):
            return {"ok": False, "error": done.stdout + done.stderr}
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    async def recorded(self) -> int:
        """Requested messages ingest recorded as sent, delivered or read."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM ingest.messages WHERE id = ANY($1::uuid[])"
                    " AND status IN ('sent', 'delivered', 'read')",
                    self.requested,
                )
            )
        finally:
            await conn.close()

    async def dead_letters(self) -> int:
        info = await self.bus.jetstream().stream_info(ZF_DLQ.name)
        return info.state.messages

    async def ready(self) -> dict[str, int]:
        """Each service's /readyz status code."""
        codes: dict[str, int] = {}
        async with httpx.AsyncClient(timeout=5) as client:
            for service in SERVICES:
                port = self.env[f"ZF_{service.upper()}_HTTP_PORT"]
                with contextlib.suppress(httpx.HTTPError):
                    codes[service] = (
                        await client.get(f"http://127.0.0.1:{port}/readyz")
                    ).status_code
        return codes


def _request(run: str, i: int) -> SendRequested:
    text = f"Pedido {run}-{i} saiu para entrega."
    return SendRequested(
        tenant_id=TENANT,
        request=SendRequest(
            message_id=uuid4(),
            channel_id=CHANNEL,
            to=Recipient(phone=RECIPIENTS[i % len(RECIPIENTS)]),
            content=TemplateContent(
                name="order_update",
                language="pt_BR",
                body_params=(f"{run}-{i}",),
                rendered_text=text,
            ),
            origin=SendOrigin.API,
            idempotency_key=f"{run}-{i}",
        ),
    )


@pytest.fixture
async def system() -> AsyncIterator[System]:
    scratch = make_scratch_dir("zapflow-outage-")
    nats_server = NatsServer(port=free_port(), store_dir=scratch / "nats", config=nats_config())
    pg = PostgresServer(scratch / "pg", fast=True)
    up: subprocess.Popen[bytes] | None = None
    bus: Client | None = None
    log = scratch / "up.log"
    try:
        await asyncio.to_thread(nats_server.start)
        await asyncio.to_thread(pg.start)
        dsn = await asyncio.to_thread(pg.create_database, "zapflow")
        env = {**os.environ, "NATS_URL": nats_server.url, "DATABASE_URL": dsn,
               "ZF_HOME": str(scratch / "home"), "ZF_LOG_FORMAT": "json"}  # fmt: skip
        for service in (*SERVICES, "simulator"):
            env[f"ZF_{service.upper()}_HTTP_PORT"] = str(free_port())
        up = _zapflow_up(env, log)
        await _until(lambda: "Ctrl-C stops everything" in log.read_text(errors="replace"), 90,
                     lambda: up is not None and up.poll() is None)  # fmt: skip
        bus = await connect_nats(nats_server.url, max_reconnect_attempts=-1)
        yield System(scratch / "home", env, nats_server, pg, dsn, up, log, bus)
    finally:
        if up is not None and up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(up.wait, 60)
            except subprocess.TimeoutExpired:
                up.kill()
        if bus is not None:
            await bus.close()
        await asyncio.to_thread(nats_server.stop)
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(scratch, ignore_errors=True)


def _zapflow_up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [BIN / "zapflow", "up", "--ready-timeout", "60"], env=env, stdout=out, stderr=out
        )


async def _until(
    predicate: Callable[[], bool], within_s: float, alive: Callable[[], bool] = lambda: True
) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert alive(), "the stack exited"
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.5)


async def _settled(system: System) -> dict[str, Any]:
    """The audit once every request reached the provider (or a final outcome)."""
    deadline = time.monotonic() + 240
    while True:
        system.alive()
        report = await asyncio.to_thread(system.audit)
        channel = _channel(report)
        if report.get("ok") and channel and channel["requested"] == len(system.requested):
            return channel
        assert time.monotonic() < deadline, report
        await asyncio.sleep(3)


def _channel(report: dict[str, Any]) -> dict[str, Any] | None:
    found = [c for c in report.get("channels", ()) if c["channel_id"] == CHANNEL]
    return found[0] if found else None


async def _check_after_recovery(system: System) -> None:
    channel = await _settled(system)
    count = len(system.requested)
    assert (channel["lost"], channel["duplicated"], channel["out_of_order"]) == (0, 0, 0)
    assert channel["accepted"] == channel["recorded_sent"] == count, channel
    assert await system.dead_letters() == 0
    deadline = time.monotonic() + 120
    while (recorded := await system.recorded()) < count:  # ingest recorded every one of them
        assert time.monotonic() < deadline, f"ingest recorded {recorded} of {count}"
        await asyncio.sleep(2)
    deadline = time.monotonic() + 60
    while set((codes := await system.ready()).values()) != {200}:
        assert time.monotonic() < deadline, codes
        await asyncio.sleep(1)
    system.alive()


async def test_postgresql_stopped_for_minutes_under_load_loses_duplicates_and_dead_letters_nothing(
    system: System,
) -> None:
    count = int(LOAD_PER_S * (WARM_S + OUTAGE_S + AFTER_S))
    load = asyncio.create_task(system.load(count))
    await asyncio.sleep(WARM_S)
    await asyncio.to_thread(system.pg.stop)
    await asyncio.sleep(OUTAGE_S)
    system.alive()
    await asyncio.to_thread(system.pg.start)
    await load
    await _check_after_recovery(system)


async def test_nats_server_restarted_after_minutes_loses_duplicates_and_dead_letters_nothing(
    system: System,
) -> None:
    count = int(LOAD_PER_S * (WARM_S + AFTER_S + OUTAGE_S))
    load = asyncio.create_task(system.load(count))
    await asyncio.sleep(WARM_S)
    await asyncio.to_thread(system.nats.stop)  # its store is kept
    await asyncio.sleep(OUTAGE_S - RECOVERING_S)
    system.alive()
    recovering = await asyncio.to_thread(_without_jetstream, system.nats.port)  # no JetStream yet
    try:
        await asyncio.sleep(RECOVERING_S)
        system.alive()
    finally:
        recovering.terminate()
        await asyncio.to_thread(recovering.wait, 10)
    await asyncio.to_thread(system.nats.start)
    await load
    await _check_after_recovery(system)


def _without_jetstream(port: int) -> subprocess.Popen[bytes]:
    """nats-server on ``port`` without JetStream: clients connect, JetStream requests fail."""
    proc = subprocess.Popen(
        [find_nats_server_binary(), "--addr", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not is_accepting("127.0.0.1", port):
        assert time.monotonic() < deadline, "nats-server without JetStream did not start"
        time.sleep(0.05)
    return proc
