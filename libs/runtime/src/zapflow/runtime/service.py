"""The service runner: connect, declare, migrate, serve, consume, and shut down gracefully.

Start-up order: NATS connection → the service's streams and consumers declared → its schema
migrated → database pool → the service's ``setup`` hook (registers consumers, HTTP routes and
resources) → every declared durable consumer must have a reader (else start-up fails: it would
only build backlog) → HTTP server → consumers. SIGTERM/SIGINT stop the consumers first (the
message in hand finishes and is acked; fetched-but-unstarted ones are nak'ed for immediate
redelivery), then the HTTP server, then the service's resources, then NATS is drained and the
pool closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from zapflow.contracts.envelope import Contract
from zapflow.contracts.queries import QuerySpec
from zapflow.contracts.streams import ConsumerSpec, StreamSpec, stream_named
from zapflow.contracts.types import ServiceName
from zapflow.runtime import broker, db, dlq, health, rpc
from zapflow.runtime.consumer import Consumer, Handler
from zapflow.runtime.http import Server, build_server
from zapflow.runtime.partitions import PartitionLeases
from zapflow.runtime.settings import BaseServiceSettings

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=Contract)
Rep = TypeVar("Rep", bound=Contract)


class Service:
    """One running Zapflow service process (or an in-process instance in tests)."""

    def __init__(
        self,
        name: ServiceName,
        settings: BaseServiceSettings,
        *,
        streams: Sequence[StreamSpec] = (),
        consumers: Sequence[ConsumerSpec] = (),
        migrations: Traversable | None = None,
        setup: Callable[[Service], Awaitable[None]] | None = None,
        db_session_state: bool = True,
    ) -> None:
        self.name = name
        self.settings = settings
        self.consumer_specs = tuple(consumers)
        # the streams it consumes too: declarations are shared data, so creating one with the
        # owner's exact config is idempotent and start-up order between services never matters
        declared = {s.name: s for s in streams}
        for c in self.consumer_specs:
            if c.stream not in declared:
                declared[c.stream] = stream_named(c.stream)
        self.streams = tuple(declared.values())
        self.migrations = migrations
        self.routes: list[BaseRoute] = []
        self.app: Starlette | None = None  # a service with its own ASGI app sets it in setup
        self.resources = contextlib.AsyncExitStack()
        self.stopping = asyncio.Event()
        self._setup = setup
        self._db_session_state = db_session_state
        self._consumers: list[Consumer] = []
        self._read: set[tuple[str, str]] = set()  # (stream, durable) a handler reads
        self._runners: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = []
        self._partition_tasks: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: Server | None = None
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._pool: asyncpg.Pool | None = None

    # -- what the setup hook and handlers use -------------------------------------------------
    @property
    def nc(self) -> NATS:
        assert self._nc is not None, "service not started"
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "service not started"
        return self._js

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "service has no database"
        return self._pool

    @property
    def publish(self) -> broker.Publisher:
        return broker.Publisher(self.js)

    async def serve(
        self,
        spec: QuerySpec[Req, Rep],
        answer: rpc.Answer[Req, Rep],
        *,
        concurrency: int = 32,
    ) -> rpc.Responder[Req, Rep]:
        """Answer the query ``spec`` (it must be this service's) until the service stops."""
        if spec.server != self.name:
            raise ValueError(f"{spec.subject} is answered by {spec.server}, not {self.name}")
        return await rpc.serve(self.nc, spec, answer, self.resources, concurrency=concurrency)

    async def ask(
        self, spec: QuerySpec[Req, Rep], request: Req, *, timeout_s: float = rpc.DEFAULT_TIMEOUT_S
    ) -> Rep:
        """Ask the query ``spec`` as this service (see ``zapflow.runtime.rpc.ask``)."""
        return await rpc.ask(self.nc, spec, request, caller=self.name, timeout_s=timeout_s)

    def reads(self, specs: Sequence[ConsumerSpec]) -> None:
        """Record that this service reads ``specs`` with a loop of its own (not ``consume``).

        Start-up fails when a declared consumer is read by nothing: it would only build backlog.
        """
        self._read.update((spec.stream, spec.durable) for spec in specs)

    def consume(self, spec: ConsumerSpec, handler: Handler, *, batch: int = 64) -> None:
        """Run ``handler`` for every message of the durable consumer ``spec`` once started."""
        self.reads([spec])
        self._consumers.append(
            Consumer(
                self.js, spec, handler, dead_letter=dlq.DeadLetters(self.js, self.name), batch=batch
            )
        )

    def consume_partitioned(
        self,
        specs: Sequence[ConsumerSpec],
        handler: Handler,
        *,
        batch: int = 64,
        ttl_s: float = 6.0,
        renew_s: float = 1.5,
    ) -> PartitionLeases:
        """Consume the partitions this replica holds a lease on, one consumer task each.

        ``specs`` are the consumers of one partitioned stream (``partition`` set on each). Leases
        move partitions between replicas (see ``zapflow.runtime.partitions``); a partition's
        consumer is stopped (message in hand finished, the rest nak'ed) before its lease goes.
        """
        by_partition = {spec.partition: spec for spec in specs if spec.partition is not None}
        if sorted(by_partition) != list(range(len(specs))):
            raise ValueError("partitioned consumers must be numbered 0..N-1")
        group = specs[0].durable.rsplit("-p", 1)[0]
        leases = PartitionLeases(
            self.js,
            group,
            len(specs),
            ttl_s=ttl_s,
            renew_s=renew_s,
            replicas=self.settings.stream_replicas,
        )
        self.reads(specs)
        running: dict[int, tuple[asyncio.Event, asyncio.Task[None]]] = {}
        dead_letter = dlq.DeadLetters(self.js, self.name)

        async def acquired(partition: int) -> None:
            spec = by_partition[partition]
            consumer = Consumer(self.js, spec, handler, dead_letter=dead_letter, batch=batch)
            stop = asyncio.Event()
            task = asyncio.create_task(consumer.run(stop), name=spec.durable)
            running[partition] = (stop, task)
            self._partition_tasks.add(task)
            task.add_done_callback(self._partition_tasks.discard)

        async def released(partition: int) -> None:
            stop, task = running.pop(partition)
            stop.set()
            try:
                await asyncio.wait_for(task, self.settings.shutdown_grace_s)
            except TimeoutError:
                logger.error(
                    "partition consumer did not stop in time", extra={"partition": partition}
                )
            except Exception:
                logger.exception("partition consumer failed", extra={"partition": partition})

        self._runners.append(lambda stop: leases.run(stop, acquired, released))
        return leases

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self._nc = await broker.connect(
            s.nats_url,
            name=f"zapflow-{self.name}",
            identity=self.name,
            seed=s.nats_seed(),
            tls_ca_file=s.nats_tls_ca_file,
        )
        self._js = self._nc.jetstream()
        await broker.declare(
            self._js,
            self.streams,
            self.consumer_specs,
            limits=s.stream_limits(),
            service=self.name,
        )
        dsn = s.database_url.get_secret_value()
        if self.migrations is not None:
            if s.migrate_on_start:
                await db.migrate(dsn, self.name, self.migrations)
            self._pool = await db.create_pool(
                dsn,
                self.name,
                max_size=s.db_pool_size,
                session_state=self._db_session_state,
            )
        if self._setup is not None:
            await self._setup(self)
        try:
            self._check_every_consumer_is_read()
        except RuntimeError:
            await self.stop()
            raise
        self.routes.extend(health.health_routes(self.name, self.readiness_checks()))
        self._server = build_server(self.routes, s.http_host, s.http_port, self.app)
        self._tasks.append(asyncio.create_task(self._server.serve(), name=f"{self.name}-http"))
        for c in self._consumers:
            self._tasks.append(asyncio.create_task(c.run(self.stopping), name=c.spec.durable))
        for runner in self._runners:
            self._tasks.append(asyncio.create_task(runner(self.stopping)))
        while not self._server.started:
            if self._tasks[0].done():
                self._tasks[0].result()  # surfaces a bind error
            await asyncio.sleep(0.02)
        logger.info("service started", extra={"http_port": s.http_port})

    async def stop(self) -> None:
        self.stopping.set()
        consumer_tasks = self._tasks[1:]
        if consumer_tasks:
            _, pending = await asyncio.wait(consumer_tasks, timeout=self.settings.shutdown_grace_s)
            for task in pending | self._partition_tasks:
                task.cancel()
        if self._server is not None:
            self._server.should_exit = True
            await asyncio.wait(self._tasks[:1], timeout=self.settings.shutdown_grace_s)
        await self.resources.aclose()
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()
        if self._pool is not None:
            await self._pool.close()
        logger.info("service stopped")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
        crashed = [t for t in self._tasks if t.done() and not t.cancelled() and t.exception()]
        await self.stop()
        waiter.cancel()
        if crashed:
            raise RuntimeError(f"{crashed[0].get_name()} crashed") from crashed[0].exception()

    def _check_every_consumer_is_read(self) -> None:
        unread = [c.durable for c in self.consumer_specs if (c.stream, c.durable) not in self._read]
        if unread:
            raise RuntimeError(
                f"{self.name} declares durable consumers no handler reads: {', '.join(unread)}"
            )

    def readiness_checks(self) -> dict[str, health.Check]:
        async def nats_ok() -> bool:
            return self.nc.is_connected

        checks: dict[str, health.Check] = {"nats": nats_ok}
        if self._pool is not None:
            pool = self._pool

            async def db_ok() -> bool:
                return bool(await pool.fetchval("SELECT 1"))

            checks["database"] = db_ok
        return checks
