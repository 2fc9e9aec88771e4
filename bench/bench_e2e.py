"""End to end: what a user gets. Sends posted to the Send API, through every service, to a provider.

The whole system runs as ``make run`` runs it: ``zapflow up`` (migrations, the demo tenant and its
development key, the six services as their production processes ``zapflow-<service>`` with the
environment it gives them, and its simulator, idle here) on a nats-server of its own (the sender's
consumers have fixed names; NATS identities enforced as in production) and a fresh database on
the run's PostgreSQL. The benchmark then acts as an integrator only, over HTTP: with the demo key
it issues a key with scope ``messages:send`` and registers C Meta channels whose provider is the
zero-latency fake of :mod:`bench.bench_sender` (``FakeMeta``, its own process: it answers like
Meta, notes arrival times, and sends no status webhooks), waits until compliance knows the
channels, and posts N template sends to ``POST /v1/messages`` (R distinct recipients, recipient
``r`` always on channel ``r mod C``, each send with its own ``Idempotency-Key``) from K
keep-alive connections in a closed loop. It waits until the provider received all N and ingest
recorded all N as ``sent`` (its ``messages`` table), then checks the provider got each once.

* ``e2e.sends_per_s``: N / (last arrival at the provider - first request written). Reference:
  ``sender.ref.consume_ack_publish`` (raw nats-py fetch, acknowledged publish, ack; the same run).
* ``e2e.recorded_per_s``: N / (ingest recorded the last send ``sent`` - first request written),
  polled every 0.2 s once the provider has them all: when the timelines show what was sent.
  Same reference.
* ``e2e.api_rps``: N / (last 202 read - first request written): the Send API's accepted sends
  per second under this load. Reference: ``asgi.publish.rps`` (a bare ASGI app doing one
  acknowledged JetStream publish per request, loaded by ``bench.load``; the same run).
* ``e2e.cpu_us_per_msg``: CPU time (``/proc``, user + system, children included) from just
  before the first request until ingest recorded the last send, summed over gateway,
  compliance, sender, ingest, nats-server and PostgreSQL (postmaster, every backend and
  background process), divided by N. Reference: ``sender.ref.consume_ack_publish.cpu_us_per_msg``
  (nats-server + the Python process of the raw loop, measured the same way).
* ``e2e.cpu_us_per_msg.<process>``: the same per process, read against the total (the ratio is
  the process's share). ``provider`` (the fake), ``client`` (this process: the HTTP clients and
  polling) and ``idle_services`` (dispatcher, realtime, the simulator, ``zapflow up`` itself) are
  shown beside it and are not in the sum.

The default is :data:`DEFAULT`: issue 10's scenario (:data:`ISSUE`: 20,000 sends, 2,000
recipients, 50 channels, 32 clients) with 6,000 sends, because at today's ~140 sends/s on 2 cores
20,000 take about 3.5 minutes; ``ZF_BENCH_E2E_SENDS=20000`` runs the issue's size (give it
``--timeout 600``). ``--quick`` runs :data:`QUICK`. The figures are rates: the size matters for
how much of the run is warm-up (the first requests pay connection pools, caches and credential
look-ups) and for how long it takes. ``--connections`` sets the clients. Retried requests
(429/503 or a broken connection, written again with the same key) are printed, not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import asyncpg
import httpx

from bench import bench_asgi, bench_sender, infra
from bench.asgi import http_figures
from bench.bench_sender import Provider, fake_meta
from bench.context import Context
from bench.cpu import PROC, CpuMeter, children
from bench.load import BatchResult, Request, post_all
from bench.report import Figure
from zapflow.cli import demo
from zapflow.cli.topology import SERVICES, SIMULATOR
from zapflow.embedded import NatsServer, free_port

BIN: Final = Path(sys.executable).parent


@dataclass(frozen=True)
class Scenario:
    sends: int
    recipients: int
    channels: int
    clients: int
    """Concurrent HTTP connections posting the sends."""


ISSUE: Final = Scenario(sends=20_000, recipients=2_000, channels=50, clients=32)
"""Issue 10's run: 20,000 template sends, 2,000 recipients, 50 Meta channels, 32 clients."""
DEFAULT: Final = Scenario(sends=6_000, recipients=2_000, channels=50, clients=32)
QUICK: Final = Scenario(sends=2_000, recipients=400, channels=10, clients=32)
SENDS_ENV: Final = "ZF_BENCH_E2E_SENDS"
"""Overrides the number of sends of the default scenario."""
TIMEOUT_S: Final = 300.0
"""The module's time limit (``--timeout`` overrides it); it took 70-110 s at today's rate."""
QUICK_TIMEOUT_S: Final = 120.0

PATH: Final = ("gateway", "compliance", "sender", "ingest", "nats", "postgres")
"""The processes whose CPU ``e2e.cpu_us_per_msg`` sums."""
BESIDE: Final = ("provider", "client", "idle_services")
"""Shown per message too, not in the sum."""
PACE: Final = {"rate_per_second": 10_000, "burst": 1_000}
"""Per channel, far above what the load reaches."""
READY_TIMEOUT_S: Final = 90.0


async def run(ctx: Context) -> list[Figure]:
    sends_ref = await bench_sender.reference(ctx)
    cpu_ref = await bench_sender.reference_cpu(ctx)
    api_ref = http_figures("asgi.publish", await bench_asgi.reference(ctx, "publish"))[0]
    scenario = scenario_of(ctx)
    refs = {"sends_ref": sends_ref, "api_ref": api_ref, "cpu_ref": cpu_ref}
    singles = await measure(ctx, scenario, post_singles)
    # VARIANT: POST /v1/messages:batch. When the Send API has its batch endpoint, measure the
    # same scenario with a second `Poster` (like `post_singles`: it posts the N sends, B items
    # per request, and returns a `BatchResult` whose `requests` counts the sends accepted) and
    # add `*figures("e2e.batch", batched, **refs)` below; its api_rps is then sends accepted per
    # second, against the same reference. Once campaigns exist, the same again for the N sends
    # launched as one campaign ("e2e.campaign").
    return figures("e2e", singles, **refs)


def scenario_of(ctx: Context) -> Scenario:
    chosen = QUICK if ctx.quick else DEFAULT
    if sends := os.environ.get(SENDS_ENV):
        chosen = replace(chosen, sends=int(sends))
    return replace(chosen, clients=ctx.load.connections)


# -- the measurement -----------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    sends: int
    posted: BatchResult
    last_arrival: float
    """Epoch seconds of the provider's last arrival."""
    recorded_at: float
    """Epoch seconds when ingest was seen to have recorded every send ``sent``."""
    cpu_s: Mapping[str, float]
    """CPU seconds per process name over the run (names of :data:`PATH` and :data:`BESIDE`)."""

    @property
    def sends_per_s(self) -> float:
        return self.sends / (self.last_arrival - self.posted.first_sent)

    @property
    def recorded_per_s(self) -> float:
        return self.sends / (self.recorded_at - self.posted.first_sent)

    @property
    def api_rps(self) -> float:
        return self.posted.rps

    def cpu_us_per_msg(self, name: str) -> float:
        return self.cpu_s[name] / self.sends * 1e6

    @property
    def total_cpu_us_per_msg(self) -> float:
        return sum(self.cpu_us_per_msg(name) for name in PATH)


def figures(
    prefix: str, result: Result, *, sends_ref: Figure, api_ref: Figure, cpu_ref: Figure
) -> list[Figure]:
    """The figures of one variant: rates and CPU against their references, then the breakdown
    against the total (so each ratio is that process's share)."""
    total = Figure.against(f"{prefix}.cpu_us_per_msg", result.total_cpu_us_per_msg, cpu_ref)
    return [
        Figure.against(f"{prefix}.sends_per_s", result.sends_per_s, sends_ref),
        Figure.against(f"{prefix}.recorded_per_s", result.recorded_per_s, sends_ref),
        Figure.against(f"{prefix}.api_rps", result.api_rps, api_ref),
        total,
        *(
            Figure.against(f"{total.name}.{name}", result.cpu_us_per_msg(name), total)
            for name in (*PATH, *BESIDE)
        ),
    ]


Poster = Callable[["System", Scenario, str], Awaitable[BatchResult]]
"""Posts a scenario's sends with the given ``messages:send`` key; returns the HTTP timing."""


async def measure(ctx: Context, scenario: Scenario, post: Poster) -> Result:
    """Run ``scenario`` through a fresh system; ``post`` puts the sends into the Send API."""
    if ctx.postgres_pid is None:
        raise RuntimeError("the end-to-end CPU figure needs the run's PostgreSQL pid")
    async with fake_meta(0.0) as meta, system(ctx) as sys_:
        key = await sys_.prepare(meta, scenario)
        cpu = CpuMeter(
            trees={
                **{
                    name: (sys_.pids[name],)
                    for name in ("gateway", "compliance", "sender", "ingest")
                },
                "nats": (sys_.nats_pid,),
                "postgres": (ctx.postgres_pid,),
                "provider": (meta.process.pid,),
                "idle": tuple(sys_.pids[n] for n in ("dispatcher", "realtime", "simulator")),
            },
            processes={"client": (os.getpid(),), "supervisor": (sys_.up_pid,)},
        )
        cpu.start()
        posted = await post(sys_, scenario, key)
        _progress(
            f"  e2e: {scenario.sends:,} sends accepted in "
            f"{posted.last_answered - posted.first_sent:.1f}s ({posted.retries} retried)"
        )
        recorded_at = await _delivered(meta, sys_, scenario.sends, posted.first_sent)
        used = cpu.stop()
        arrivals = await meta.arrivals()
    times = [t for per_number in arrivals.values() for t in per_number]
    if len(times) != scenario.sends:
        raise RuntimeError(f"the provider received {len(times)} sends, not {scenario.sends}")
    used["idle_services"] = used.pop("idle") + used.pop("supervisor")
    return Result(scenario.sends, posted, max(times), recorded_at, used)


async def _delivered(meta: Provider, sys_: System, sends: int, since: float) -> float:
    """Wait until the provider received ``sends`` and ingest recorded them ``sent``; returns when
    ingest was seen to have them all (epoch seconds). Prints progress every 15 s. The database
    is read only once the provider has them all, so that polling costs PostgreSQL next to
    nothing."""
    last_report = time.monotonic()
    while (arrived := await meta.count()) < sends:
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            _progress(
                f"  e2e: {arrived:,}/{sends:,} at the provider after {time.time() - since:.0f}s"
            )
        await asyncio.sleep(0.5 if sends - arrived > 200 else 0.05)
    conn = await asyncpg.connect(sys_.dsn)
    try:
        while (recorded := await _recorded(conn)) < sends:
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                _progress(f"  e2e: {recorded:,}/{sends:,} recorded by ingest")
            await asyncio.sleep(0.2)
        return time.time()
    finally:
        await conn.close()


async def _recorded(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM ingest.messages WHERE tenant_id = $1 AND direction = 'outbound' "
        "AND status = 'sent' AND channel_id LIKE 'e2e-%'",
        demo.TENANT,
    )
    return count


# -- the posters -----------------------------------------------------------------------------


def recipient(r: int) -> str:
    return f"+55119{r:08d}"


def channel_id(c: int) -> str:
    return f"e2e-{c:03d}"


def single_sends(scenario: Scenario, key: str, run_id: str) -> list[Request]:
    """``POST /v1/messages`` of every send: send ``i`` goes to recipient ``i mod R`` on that
    recipient's channel, a template whose parameter is the recipient's sequence number."""
    requests = []
    for i in range(scenario.sends):
        r = i % scenario.recipients
        body = {
            "channel_id": channel_id(r % scenario.channels),
            "to": recipient(r),
            "content": {
                "kind": "template",
                "name": "bench_notice",
                "language": "pt_BR",
                "body_params": [str(i // scenario.recipients)],
            },
        }
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"{run_id}-{i}"}
        requests.append(Request.post_json("/v1/messages", json.dumps(body).encode(), headers))
    return requests


async def post_singles(sys_: System, scenario: Scenario, key: str) -> BatchResult:
    requests = single_sends(scenario, key, uuid.uuid4().hex[:12])
    return await post_all("127.0.0.1", sys_.gateway_port, requests, scenario.clients)


# -- the system --------------------------------------------------------------------------------


@dataclass
class System:
    """``zapflow up`` on a nats-server and database of its own."""

    dsn: str
    nats_pid: int
    up_pid: int
    ports: dict[str, int]
    pids: dict[str, int] = field(default_factory=dict)
    """Process id of each service and the simulator."""

    @property
    def gateway_port(self) -> int:
        return self.ports["gateway"]

    async def prepare(self, meta: Provider, scenario: Scenario) -> str:
        """Issue a ``messages:send`` key and register the channels with the demo key, wait until
        compliance knows them; returns the key."""
        base = f"http://127.0.0.1:{self.gateway_port}"
        admin = {"Authorization": f"Bearer {demo.API_KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=admin, timeout=30) as api:
            answer = await api.post(
                "/v1/api-keys", json={"name": "bench e2e", "scopes": ["messages:send"]}
            )
            answer.raise_for_status()
            key: str = answer.json()["key"]
            for c in range(scenario.channels):
                answer = await api.post("/v1/channels", json=_channel(c, meta.url))
                if answer.status_code != 201:
                    raise RuntimeError(f"channel {c} refused: {answer.status_code} {answer.text}")
        ids = [channel_id(c) for c in range(scenario.channels)]
        conn = await asyncpg.connect(self.dsn)
        try:
            async with asyncio.timeout(60):
                while True:
                    known = await conn.fetchval(
                        "SELECT count(*) FROM compliance.channels WHERE channel_id = ANY($1)", ids
                    )
                    if known == len(ids):
                        break
                    await asyncio.sleep(0.1)
        finally:
            await conn.close()
        return key


def _channel(c: int, provider_url: str) -> dict[str, object]:
    return {
        "id": channel_id(c),
        "provider": "meta",
        "display_name": f"Bench {c}",
        "provider_account": str(300_000_000 + c),
        "base_url": f"{provider_url}/v21.0",
        "pace": PACE,
        "secrets": {"app_secret": f"bench-secret-{c}", "access_token": f"bench-token-{c}"},
    }


@contextlib.asynccontextmanager
async def system(ctx: Context) -> AsyncIterator[System]:
    """Start ``zapflow up`` (with ``NATS_URL`` and ``DATABASE_URL`` given, it starts no servers
    of its own) and wait until it reports everything ready; stop it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="e2e-", dir=ctx.workdir))
    nats = NatsServer(store_dir=workdir / "nats", config=infra.nats_config())
    await asyncio.to_thread(nats.start)
    dsn = await asyncio.to_thread(ctx.create_database, f"bench_e2e_{uuid.uuid4().hex[:8]}")
    ports = {svc.name: free_port() for svc in (*SERVICES, SIMULATOR)}
    env = {
        **os.environ,
        "NATS_URL": nats.url,
        "DATABASE_URL": dsn,
        "ZF_HOME": str(workdir / "home"),
        "ZF_LOG_FORMAT": "json",
        **{f"{svc.env_prefix}HTTP_PORT": str(ports[svc.name]) for svc in (*SERVICES, SIMULATOR)},
    }
    log_path = workdir / "up.log"
    with log_path.open("wb") as log:
        up = await asyncio.create_subprocess_exec(
            BIN / "zapflow",
            "up",
            "--ready-timeout",
            str(READY_TIMEOUT_S),
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=workdir,
        )
    pids: dict[str, int] = {}
    try:
        await _wait_up(up, log_path)
        pids = _service_pids(up.pid)
        assert nats.pid is not None
        yield System(dsn, nats.pid, up.pid, ports, pids)
    finally:
        await _stop(up, pids)
        await asyncio.to_thread(nats.stop)
        shutil.rmtree(workdir / "nats", ignore_errors=True)


async def _wait_up(up: asyncio.subprocess.Process, log: Path) -> None:
    async with asyncio.timeout(READY_TIMEOUT_S + 30):
        while True:
            said = await asyncio.to_thread(log.read_text, errors="replace")
            if "Ctrl-C stops everything" in said:
                return
            if up.returncode is not None:
                raise RuntimeError(f"zapflow up exited: {said[-3000:]}")
            await asyncio.sleep(0.2)


def _service_pids(up_pid: int) -> dict[str, int]:
    """The children of ``zapflow up`` by service name (``zapflow-<name>`` in the command line)."""
    wanted = {f"zapflow-{svc.name}": svc.name for svc in (*SERVICES, SIMULATOR)}
    found: dict[str, int] = {}
    for pid in children(up_pid):
        with contextlib.suppress(OSError):
            argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
            for arg in argv[:2]:
                name = wanted.get(Path(arg.decode(errors="replace")).name)
                if name is not None:
                    found[name] = pid
    if missing := sorted(set(wanted.values()) - set(found)):
        raise RuntimeError(f"zapflow up runs no process for {missing}")
    return found


async def _stop(up: asyncio.subprocess.Process, pids: Mapping[str, int]) -> None:
    """SIGINT to ``zapflow up`` (it stops the services in order). If it does not stop in time,
    SIGKILL to it and to those of its services still running (they run in sessions of their
    own, so they would outlive it)."""
    if up.returncode is None:
        up.send_signal(signal.SIGINT)
    try:
        async with asyncio.timeout(30):
            await up.wait()
        return
    except TimeoutError:
        up.kill()
        await up.wait()
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            if f"zapflow-{name}".encode() in (PROC / str(pid) / "cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
