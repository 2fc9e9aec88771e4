"""``zapflow up``: the whole system on one machine.

Starts an embedded nats-server and PostgreSQL (unless ``NATS_URL`` / ``DATABASE_URL`` point
elsewhere), applies migrations, seeds the demo tenant (see :mod:`zapflow.cli.demo`), starts the six
services and the simulator provider as separate processes with prefixed logs, waits until each
answers ``/readyz``, prints where to reach them, and on Ctrl-C (or SIGTERM) stops everything.
Everything runs as a development deployment (:func:`zapflow.cli.demo.local_env`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from zapflow.cli import demo, topology
from zapflow.cli.migrations import migrate_all
from zapflow.cli.topology import SERVICES, ServiceInfo
from zapflow.embedded.nats import NatsServer
from zapflow.embedded.postgres import PostgresServer
from zapflow.runtime.natsauth import Identities

_COLORS = ("36", "32", "33", "35", "34", "31", "96", "92")


def say(text: str) -> None:
    print(
        f"\033[1mzapflow\033[0m | {text}" if sys.stdout.isatty() else f"zapflow | {text}",
        flush=True,
    )


@contextlib.contextmanager
def embedded_servers(home: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Yield (nats_url, database_url, identity environment), starting local servers for the
    ones not given. A local nats-server enforces one NATS identity per service (seeds kept in
    ``<home>/identities``), passed to the services through the environment; with ``NATS_URL``
    set, the services use whatever identities the environment already gives them."""
    with contextlib.ExitStack() as stack:
        nats_url = os.environ.get("NATS_URL")
        identity_env: dict[str, str] = {}
        if not nats_url:
            identities = Identities.load_or_create(topology.identities_dir())
            nats = NatsServer(
                port=topology.LOCAL_NATS_PORT,
                monitor_port=topology.LOCAL_NATS_MONITOR_PORT,
                store_dir=home / "nats",
                log_file=home / "nats.log",
                config=identities.authorization_config(),
            )
            stack.enter_context(nats)
            nats_url = nats.url
            identity_env = identities.environment()
            say(f"nats-server ready at {nats_url} (data in {home / 'nats'})")
        db_url = os.environ.get("DATABASE_URL")
        if not db_url:
            pg = PostgresServer(data_dir=home / "pg", port=topology.LOCAL_PG_PORT)
            stack.enter_context(pg)
            pg.create_database(topology.LOCAL_DB)
            db_url = pg.dsn(topology.LOCAL_DB)
            where = str(home / "pg")
            if pg.cluster_dir != home / "pg":  # as root, where the postgres user can reach it
                where = f"{pg.cluster_dir}, linked from {where}"
            say(f"postgresql ready at {db_url} (data in {where})")
        yield nats_url, db_url, identity_env


class Supervisor:
    """Runs service processes and prefixes their output with the service's name."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self._pumps: list[asyncio.Task[None]] = []

    async def start(self, svc: ServiceInfo, color: str) -> None:
        exe = shutil.which(svc.command, path=str(Path(sys.executable).parent)) or svc.command
        env = {**self.env, f"{svc.env_prefix}LOG_FORMAT": os.environ.get("ZF_LOG_FORMAT", "text")}
        if svc in SERVICES:
            env[f"{svc.env_prefix}HTTP_PORT"] = str(svc.port())
            env[f"{svc.env_prefix}MIGRATE_ON_START"] = "false"
        proc = await asyncio.create_subprocess_exec(
            exe,
            *svc.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )
        self.procs[svc.name] = proc
        self._pumps.append(asyncio.create_task(self._pump(svc.name, proc, color)))

    async def _pump(self, name: str, proc: asyncio.subprocess.Process, color: str) -> None:
        assert proc.stdout is not None
        prefix = f"\033[{color}m{name:<10}\033[0m| " if sys.stdout.isatty() else f"{name:<10}| "
        async for line in proc.stdout:
            sys.stdout.write(prefix + line.decode(errors="replace"))
            sys.stdout.flush()
        code = await proc.wait()
        say(f"{name} exited with code {code}")

    async def stop(self, grace: float = 10.0) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*self._pumps, return_exceptions=True)


async def wait_ready(services: tuple[ServiceInfo, ...], within_s: float) -> list[str]:
    """Poll each service's /readyz until all answer 200; returns those that never did."""
    pending = {svc.name: svc for svc in services}
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        while pending and time.monotonic() < deadline:
            for name, svc in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(svc.base_url() + "/readyz")).status_code == 200:
                        del pending[name]
            await asyncio.sleep(0.2)
    return sorted(pending)


@contextlib.asynccontextmanager
async def running_services(
    env: dict[str, str], services: tuple[ServiceInfo, ...]
) -> AsyncIterator[Supervisor]:
    sup = Supervisor(env)
    try:
        for i, svc in enumerate(services):
            await sup.start(svc, _COLORS[i % len(_COLORS)])
        yield sup
    finally:
        await sup.stop()


def _print_demo(seeded: list[str]) -> None:
    for line in seeded:
        say(f"  seed: {line}")
    api = demo.gateway().base_url()
    say(f"REST API     {api}/v1  (OpenAPI at {api}/docs)")
    say(f"API key      {demo.API_KEY}  (tenant {demo.TENANT}, development only)")
    say(f"channel      {demo.CHANNEL} (Meta) served by the simulator at {demo.provider_base_url()}")
    say(f"try it       curl -H 'Authorization: Bearer {demo.API_KEY}' {api}/v1/channels")


async def _up(
    home: Path, nats_url: str, db_url: str, identity_env: dict[str, str], ready_timeout: float
) -> int:
    started = time.monotonic()
    applied = await migrate_all(db_url)
    say("migrations applied: " + ", ".join(f"{k}={len(v)}" for k, v in applied.items()))
    seeded = await asyncio.to_thread(demo.seed, db_url)
    env = {**demo.local_env(), **identity_env, "NATS_URL": nats_url, "DATABASE_URL": db_url}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    everything = (*SERVICES, demo.simulator_service(home))
    async with running_services(env, everything) as sup:
        missing = await wait_ready(everything, ready_timeout)
        if missing:
            say(f"not ready after {ready_timeout:.0f}s: {', '.join(missing)}; stopping")
            return 1
        say(
            f"all {len(SERVICES)} services and the simulator ready in "
            f"{time.monotonic() - started:.1f}s"
        )
        for svc in SERVICES:
            say(f"  {svc.name:<10} {svc.base_url()}  (/healthz /readyz /metrics)")
        say(f"  {'simulator':<10} {topology.SIMULATOR.base_url()}  (/_audit /_stats)")
        _print_demo(seeded)
        say("`zapflow status` shows health, streams and consumers; Ctrl-C stops everything")
        exited = [asyncio.create_task(p.wait()) for p in sup.procs.values()]
        await asyncio.wait(
            [asyncio.create_task(stop.wait()), *exited], return_when="FIRST_COMPLETED"
        )
        say("stopping")
    return 0


def up(ready_timeout: float = 60.0) -> int:
    home = topology.state_dir()
    home.mkdir(parents=True, exist_ok=True)
    with embedded_servers(home) as (nats_url, db_url, identity_env):
        code = asyncio.run(_up(home, nats_url, db_url, identity_env, ready_timeout))
    say("stopped")
    return code
