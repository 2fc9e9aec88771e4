"""Sender throughput and pace, against a lean Meta-format provider in this process.

Each measurement gets a nats-server of its own (the sender's stream, consumers and lease bucket
have fixed names) and a database of its own on the run's PostgreSQL; the sender runs as
``zapflow-sender`` processes, as in production. The provider is a minimal asyncio HTTP/1.1
server answering Meta's send format after a fixed latency and noting when each request arrived;
the test plays the gateway (``ChannelRegistered``, ``CHANNEL_CREDENTIALS``) and compliance
(``SendApproved``).

* ``sender.sends_per_s`` (a *partial* figure: one hop of the outbound path, without the Send
  API, compliance or ingest; ``e2e.sends_per_s`` of :mod:`bench.bench_e2e` is what users get): N
  approved sends (distinct recipients, 8 channels, pace far above what is reached) are stored,
  then one replica starts; the figure is the arrival rate at the provider between the 10th and
  the 90th percentile of arrivals, with zero provider latency. Each send is
  a fetch, an attempt record written before and after the call, the HTTP call, a published
  ``SendSucceeded`` and the ack.
* ``sender.ref.consume_ack_publish`` (its reference, same server kind, same N): raw nats-py
  ``fetch(100)``, then per message one acknowledged JetStream publish (concurrent within the
  batch) and the ack — the messaging a send needs, without database or HTTP.
  ``sender.ref.consume_ack_publish.cpu_us_per_msg``: the CPU that took per message, summed over
  nats-server and this (the benchmark's) process, from ``/proc`` (the reference of
  ``e2e.cpu_us_per_msg``).
* ``sender.pace.achieved_ratio`` / ``sender.pace.achieved_min_ratio``: 50 channels (16 with
  ``--quick``) paced at 80 msg/s (burst 8), two replicas, 200 ms provider latency, a backlog on
  every channel; arrivals per channel in a window of the run's duration starting 1 s after the
  backlog was stored, divided by the configured rate: the median and the lowest channel
  (reference: 1.0, the configured rate). ``sender.pace.achieved_total``: all channels' arrivals
  per second in the window (reference: 50 x 80 msg/s).
* ``sender.pace.max_1s_window``: the most arrivals of one channel in any 1 s window, from the
  first arrival to the end of the window (reference: rate + burst, the most the pace allows).
* ``sender.pace.sender_cpu`` / ``sender.pace.provider_cpu``: CPU the replicas / the fake
  provider used in the window, in cores (so a reader sees what is saturated).

Channels are chosen so that no partition carries more than four (the consumer's
``max_ack_pending`` of 100 bounds what a partition holds: 4 x 80 msg/s x 0.2 s fits). On a
machine with fewer cores than the load needs, the achieved ratio shows it; the window must hold
regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

import httpx
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from bench import infra
from bench.context import Context
from bench.cpu import CpuMeter, cpu_seconds
from bench.report import Figure
from zapflow.contracts.channels.v1 import PaceSettings
from zapflow.contracts.streams import ZF_CHANNELS, ZF_DLQ, ZF_SENDER, ZF_SENDING
from zapflow.contracts.subjects import SEND_PARTITIONS, subject_for
from zapflow.embedded import NatsServer, free_port
from zapflow.runtime.broker import connect_tooling, declare, publish_headers
from zapflow.sender.testing import (
    CredentialsResponder,
    SimChannel,
    approved_text,
    partition_of,
    register_channels,
)

BIN: Final = Path(sys.executable).parent
REPO: Final = Path(__file__).resolve().parent.parent
THROUGHPUT_CHANNELS: Final = 8
SENDS_PER_SECOND_OF_RUN: Final = 1000
"""N for ``sends_per_s`` = this x the run's duration."""
PACE_CHANNELS: Final = 50
PACE_CHANNELS_QUICK: Final = 16
RATE: Final = 80.0
BURST: Final = 8
LATENCY_S: Final = 0.2
PUBLISH_WINDOW: Final = 1000


async def run(ctx: Context) -> list[Figure]:
    ref = await reference(ctx)
    ref_cpu = await reference_cpu(ctx)
    sends = await _throughput(ctx)
    paced = await _pace(ctx)
    configured = Figure.baseline("sender.pace.configured", 1.0, "ratio")
    allowed = Figure.baseline("sender.pace.rate_plus_burst", RATE + BURST, "msg", better="lower")
    total = Figure.baseline("sender.pace.configured_total", RATE * paced.channels, "msg/s")
    return [
        ref,
        ref_cpu,
        Figure.against("sender.sends_per_s", sends, ref),
        configured,
        Figure.against("sender.pace.achieved_ratio", paced.median, configured),
        Figure.against("sender.pace.achieved_min_ratio", paced.minimum, configured),
        total,
        Figure.against("sender.pace.achieved_total", paced.total_per_s, total),
        allowed,
        Figure.against("sender.pace.max_1s_window", paced.most_in_1s, allowed),
        Figure.baseline("sender.pace.sender_cpu", paced.sender_cores, "cores", better="lower"),
        Figure.baseline("sender.pace.provider_cpu", paced.provider_cores, "cores", better="lower"),
    ]


# -- the provider ---------------------------------------------------------------------------


@dataclass
class FakeMeta(asyncio.Protocol):
    """Meta's ``POST /{version}/{phone_number_id}/messages``: 200 with a wamid after
    ``latency_s``, noting when each request arrived; ``GET /_count`` and ``GET /_arrivals``
    (JSON ``{phone_number_id: [epoch seconds]}``) report them."""

    latency_s: float = 0.0
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _buffer: bytearray = field(default_factory=bytearray)
    _transport: asyncio.Transport | None = None

    def __call__(self) -> FakeMeta:
        return FakeMeta(self.latency_s, self.arrivals)  # one protocol per connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            length = next(
                (int(h.split(":", 1)[1]) for h in head if h.lower().startswith("content-length:")),
                0,
            )
            if len(self._buffer) < end + 4 + length:
                return
            del self._buffer[: end + 4 + length]
            method, path = head[0].split(" ")[:2]
            if method == "GET":
                self._report(path)
            else:
                number = path.split("/")[2]
                self.arrivals[number].append(time.time())
                self._send_ok(len(self.arrivals[number]), number)

    def _send_ok(self, n: int, number: str) -> None:
        body = (
            '{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],'
            f'"messages":[{{"id":"wamid.{number}.{n}"}}]}}'
        ).encode()
        if self.latency_s:
            loop = asyncio.get_running_loop()
            loop.call_later(self.latency_s, self._write, _response(body))
        else:
            self._write(_response(body))

    def _report(self, path: str) -> None:
        if path == "/_count":
            body = str(sum(map(len, self.arrivals.values()))).encode()
        else:
            body = json.dumps(self.arrivals).encode()
        self._write(_response(body))

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


def _response(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


async def serve_fake_meta(latency_s: float, port: int) -> None:
    """The provider's own process (``python -m bench.bench_sender PORT LATENCY``): its clock
    then notes arrivals without waiting for the benchmark's own work."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FakeMeta(latency_s), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


@dataclass
class Provider:
    url: str
    process: asyncio.subprocess.Process
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))
    """One client for every poll: a new one costs ~40 ms of CPU (it loads the CA bundle for its
    TLS context), which polling every 0.2 s took from the cores the measured processes share."""

    async def count(self) -> int:
        return int((await self.client.get(f"{self.url}/_count")).text)

    async def arrivals(self) -> dict[str, list[float]]:
        doc: dict[str, list[float]] = (await self.client.get(f"{self.url}/_arrivals")).json()
        return defaultdict(list, doc)

    async def wait_for(self, total: int, poll_s: float = 0.2) -> None:
        """Poll until ``total`` requests arrived (the provider is another process)."""
        while True:
            missing = total - await self.count()
            if missing <= 0:
                return
            await asyncio.sleep(poll_s if missing > 100 else poll_s / 4)


@contextlib.asynccontextmanager
async def fake_meta(latency_s: float) -> AsyncIterator[Provider]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_sender", str(port), str(latency_s), cwd=REPO
    )
    provider = Provider(f"http://127.0.0.1:{port}", process)
    try:
        async with asyncio.timeout(15):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    await provider.count()
                    break
                await asyncio.sleep(0.05)
        yield provider
    finally:
        await provider.client.aclose()
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()


# -- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    nats_url: str
    nats_pid: int
    nc: NATS
    js: JetStreamContext
    dsn: str
    workdir: Path
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start_sender(self, name: str) -> None:
        await self.start_service(name, "sender")

    async def start_service(self, name: str, service: str) -> asyncio.subprocess.Process:
        """``zapflow-<service>`` on this stack's servers; returns once it is ready."""
        port = free_port()
        prefix = f"ZF_{service.upper()}_"
        env = {
            **os.environ,
            "NATS_URL": self.nats_url,
            "DATABASE_URL": self.dsn,
            f"{prefix}HTTP_PORT": str(port),
            f"{prefix}LOG_LEVEL": "WARNING",
            f"{prefix}LOG_FORMAT": "json",
        }
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                BIN / f"zapflow-{service}", env=env, stderr=log
            )
        self.processes.append(process)
        async with httpx.AsyncClient() as client, asyncio.timeout(30):
            while True:
                if process.returncode is not None:
                    tail = (self.workdir / f"{name}.log").read_text()[-600:]
                    raise RuntimeError(f"zapflow-{service} exited: {tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        return process
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self.processes:
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()


@contextlib.asynccontextmanager
async def stack(ctx: Context, name: str) -> AsyncIterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ctx.workdir))
    server = NatsServer(store_dir=workdir / "nats", config=infra.nats_config())
    await asyncio.to_thread(server.start)
    nc = await connect_tooling(server.url, "bench")
    js = nc.jetstream(publish_async_max_pending=PUBLISH_WINDOW)
    await declare(js, (ZF_CHANNELS, ZF_SENDING, ZF_SENDER, ZF_DLQ))
    assert server.pid is not None
    built = Stack(server.url, server.pid, nc, js, await ctx.database(name), workdir)
    try:
        yield built
    finally:
        await built.stop()
        await nc.close()
        await asyncio.to_thread(server.stop)
        shutil.rmtree(workdir / "nats", ignore_errors=True)


def spread_channels(count: int, per_partition: int) -> list[SimChannel]:
    """Channels of one tenant, at most ``per_partition`` in any partition."""
    tenant = f"bench{os.getpid()}"
    load: dict[int, int] = defaultdict(int)
    channels: list[SimChannel] = []
    i = 0
    while len(channels) < count:
        channel_id = f"ch{i}"
        i += 1
        partition = partition_of(tenant, channel_id)
        if load[partition] < per_partition:
            load[partition] += 1
            channels.append(SimChannel(tenant, channel_id, str(100_000_000 + len(channels))))
    return channels


async def publish_sends(js: JetStreamContext, channels: list[SimChannel], per_channel: int) -> int:
    """``per_channel`` sends to distinct recipients on every channel, interleaved; returns how
    many were published (``per_channel`` x channels: what a caller waits for)."""
    for i in range(per_channel):
        for channel in channels:
            event = approved_text(channel, f"+5511{(i * 7919) % 10**9:09d}", f"bench {i}")
            await js.publish_async(
                subject_for(event), event.model_dump_json().encode(), headers=publish_headers(event)
            )
    async with asyncio.timeout(60):
        await js.publish_async_completed()
    return per_channel * len(channels)


async def prepare(st: Stack, channels: list[SimChannel], url: str, pace: PaceSettings) -> None:
    """Play the gateway: register the channels, answer their credentials."""
    await CredentialsResponder(st.nc, url, channels).start()
    await register_channels(st.js, channels, url, pace)


# -- the measurements -----------------------------------------------------------------------


async def _throughput(ctx: Context) -> float:
    wanted = int(SENDS_PER_SECOND_OF_RUN * ctx.duration)
    channels = spread_channels(THROUGHPUT_CHANNELS, per_partition=1)
    async with stack(ctx, "bench_sender_throughput") as st, fake_meta(0.0) as meta:
        await prepare(st, channels, meta.url, PaceSettings(rate_per_second=100_000, burst=1000))
        total = await publish_sends(st.js, channels, wanted // len(channels))
        await st.start_sender("throughput")
        async with asyncio.timeout(ctx.duration * 20 + 60):
            await meta.wait_for(total)
        arrivals = await meta.arrivals()
    times = sorted(t for per_number in arrivals.values() for t in per_number)
    lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
    return (len(times) * 8 // 10) / (hi - lo)


@dataclass(frozen=True)
class RawReference:
    """What the raw consume+ack+publish loop achieved."""

    rate: float
    """Messages per second."""
    cpu_us_per_msg: float
    """CPU of nats-server and the benchmark's process over the loop, per message."""


async def reference(ctx: Context) -> Figure:
    """``sender.ref.consume_ack_publish``, measured once per run (``bench_outbound`` and
    ``bench_e2e`` use it)."""
    raw = await ctx.once("sender.ref.consume_ack_publish", lambda: _reference(ctx))
    return Figure.baseline("sender.ref.consume_ack_publish", raw.rate, "msg/s")


async def reference_cpu(ctx: Context) -> Figure:
    """``sender.ref.consume_ack_publish.cpu_us_per_msg``, from the same measurement."""
    raw = await ctx.once("sender.ref.consume_ack_publish", lambda: _reference(ctx))
    name = "sender.ref.consume_ack_publish.cpu_us_per_msg"
    return Figure.baseline(name, raw.cpu_us_per_msg, "µs/msg", better="lower")


async def _reference(ctx: Context) -> RawReference:
    """Raw nats-py: fetch(100), publish one event per message (acknowledged), ack."""
    total = int(SENDS_PER_SECOND_OF_RUN * ctx.duration)
    async with stack(ctx, "bench_sender_reference") as st:
        channels = spread_channels(1, per_partition=1)
        total = await publish_sends(st.js, channels, total)
        sub = await st.js.pull_subscribe(
            f"{ZF_SENDER.subjects[0]}.>", durable="bench-reference", stream=ZF_SENDER.name
        )
        cpu = CpuMeter(trees={"nats": (st.nats_pid,)}, processes={"python": (os.getpid(),)})
        done = 0
        cpu.start()
        started = time.perf_counter()
        while done < total:
            try:
                msgs = await sub.fetch(100, timeout=1)
            except NatsTimeoutError:
                continue

            async def one(msg: Msg) -> None:
                await st.js.publish(
                    "zf.sending.sent.v1.bench", msg.data, headers={"Nats-Msg-Id": msg.reply}
                )
                await msg.ack()

            await asyncio.gather(*map(one, msgs))
            done += len(msgs)
        elapsed = time.perf_counter() - started
        used = sum(cpu.stop().values())
        return RawReference(rate=total / elapsed, cpu_us_per_msg=used / total * 1e6)


@dataclass(frozen=True)
class PaceResult:
    channels: int
    median: float
    """Median over the channels of (arrivals in the window / window) / configured rate."""
    minimum: float
    total_per_s: float
    """Arrivals of every channel in the window, per second."""
    most_in_1s: int
    sender_cores: float
    """CPU the sender replicas used in the window, in cores."""
    provider_cores: float


async def _pace(ctx: Context) -> PaceResult:
    count = PACE_CHANNELS_QUICK if ctx.quick else PACE_CHANNELS
    per_partition = -(-count // SEND_PARTITIONS)
    channels = spread_channels(count, per_partition=per_partition)
    window = max(3.0, ctx.duration)
    per_channel = int(RATE * (window + 10))  # a backlog through the window, at full pace
    pace = PaceSettings(rate_per_second=RATE, burst=BURST)
    async with stack(ctx, "bench_sender_pace") as st, fake_meta(LATENCY_S) as meta:
        await prepare(st, channels, meta.url, pace)
        await st.start_sender("pace-a")
        await st.start_sender("pace-b")
        await asyncio.sleep(4)  # leases settled between the two replicas
        await publish_sends(st.js, channels, per_channel)
        start = time.time() + 1.0  # past the first second of empty buckets
        await asyncio.sleep(start - time.time())
        senders = [cpu_seconds(p.pid) for p in st.processes]
        provider = cpu_seconds(meta.process.pid)
        await asyncio.sleep(start + window - time.time())
        sender_cores = sum(cpu_seconds(p.pid) for p in st.processes) - sum(senders)
        provider_cores = cpu_seconds(meta.process.pid) - provider
        await asyncio.sleep(0.5)
        received = await meta.arrivals()
    achieved: list[float] = []
    most = 0
    for channel in channels:
        arrivals = sorted(received[channel.phone_number_id])
        in_window = sum(start <= t < start + window for t in arrivals)
        achieved.append(in_window / window / RATE)
        most = max(most, _max_in_1s(arrivals))
    return PaceResult(
        channels=count,
        median=statistics.median(achieved),
        minimum=min(achieved),
        total_per_s=sum(achieved) * RATE,
        most_in_1s=most,
        sender_cores=sender_cores / window,
        provider_cores=provider_cores / window,
    )


def _max_in_1s(times: list[float]) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


if __name__ == "__main__":  # the fake provider's process
    import uvloop

    uvloop.run(serve_fake_meta(float(sys.argv[2]), int(sys.argv[1])))
