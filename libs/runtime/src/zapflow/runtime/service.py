"""The service runner: connect, declare, migrate, serve, consume, and shut down gracefully.

Start-up order: NATS connection → the service's streams and consumers declared → its schema
migrated → database pool (bounded in time, ``zapflow.runtime.db.Timeouts``) → the service's
``setup`` hook (registers consumers, HTTP routes, background tasks and resources) → every
declared durable consumer must have a reader (else start-up fails: it would only build backlog)
→ HTTP server → consumers and partition leases → the max-deliveries watch of the consumers it
reads. SIGTERM/SIGINT stop the consumers first (the message in hand finishes and is acked;
fetched-but-unstarted ones are nak'ed for immediate redelivery), then the HTTP server, then the
background tasks, then the service's resources, then NATS is drained and the pool closed.

Every long-running task is supervised (``zapflow.runtime.supervise``): consumers
(``consumer:<durable>``), partition leases (``partitions:<group>``) and the loops a service
starts with :meth:`Service.supervise` (``task:<name>``) are restarted after a crash and reported
by ``/readyz`` while they are down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib.resources.abc import Traversable
from typing import TypeVar

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from zapflow.contracts.envelope import Contract
from zapflow.contracts.queries import QuerySpec
from zapflow.contracts.streams import ConsumerSpec, StreamSpec, stream_named
from zapflow.contracts.types import ServiceName
from zapflow.runtime import broker, db, dlq, health, rpc
from zapflow.runtime.consumer import BatchHandler, Consumer, Handler
from zapflow.runtime.http import Server, build_server
from zapflow.runtime.partitions import MakeWork, Ownership, PartitionSupervisor
from zapflow.runtime.settings import BaseServiceSettings
from zapflow.runtime.supervise import Factory, Supervisor

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
        self._partitioned: list[PartitionSupervisor] = []
        self._read: list[ConsumerSpec] = []  # what the max-deliveries watch covers
        self._workers = Supervisor(self.stopping)  # consumers and partition leases
        self._background = Supervisor()  # the service's own loops, stopped after HTTP
        self._checks: dict[str, health.Check] = {}
        self._advisories: list[Subscription] = []
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
        self._read.extend(specs)

    def consume(
        self,
        spec: ConsumerSpec,
        handler: Handler,
        *,
        batch: int = 64,
        batch_handler: BatchHandler | None = None,
    ) -> None:
        """Run ``handler`` for every message of the durable consumer ``spec`` once started.

        ``batch_handler``, when given, takes a whole fetch at once (one transaction, publishes
        pipelined) and must have the effect of ``handler`` applied to each message in order;
        ``handler`` is the fallback for a batch that failed (see ``Consumer.handle_batch``)."""
        self.reads([spec])
        self._consumers.append(
            Consumer(
                self.js,
                spec,
                handler,
                dead_letter=dlq.DeadLetters(self.js, self.name),
                batch=batch,
                batch_handler=batch_handler,
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
        batch_handler: BatchHandler | None = None,
    ) -> PartitionSupervisor:
        """Consume the partitions this replica holds a lease on, one consumer each.

        ``specs`` are the consumers of one partitioned stream (``partition`` set on each). Leases
        move partitions between replicas (see ``zapflow.runtime.partitions``); a partition's
        consumer checks its ownership before every fetch and message, and is stopped (message in
        hand finished, the rest nak'ed) before its lease goes. Each ownership starts with a
        reset of the durable's delivery state, so what a previous owner left unacknowledged is
        delivered again at once, in order.
        """
        dead_letter = dlq.DeadLetters(self.js, self.name)

        def make(spec: ConsumerSpec, ownership: Ownership) -> ConsumerWork:
            return ConsumerWork(
                Consumer(
                    self.js, spec, handler, dead_letter=dead_letter, batch=batch,
                    holds=ownership.held, fresh=True, batch_handler=batch_handler,
                )
            )  # fmt: skip

        return self.partitioned(specs, make, ttl_s=ttl_s, renew_s=renew_s)

    def partitioned(
        self,
        specs: Sequence[ConsumerSpec],
        make_work: MakeWork,
        *,
        ttl_s: float = 6.0,
        renew_s: float = 1.5,
    ) -> PartitionSupervisor:
        """Run ``make_work(spec, ownership)`` on each partition this replica holds a lease on
        (a service with its own partition worker, like the sender; ``consume_partitioned`` for
        the runtime's consumer). Started with the consumers, stopped with them."""
        supervisor = PartitionSupervisor(
            self.js,
            specs,
            make_work,
            ttl_s=ttl_s,
            renew_s=renew_s,
            grace_s=self.settings.shutdown_grace_s,
            replicas=self.settings.stream_replicas,
        )
        self._partitioned.append(supervisor)
        self._read.extend(specs)
        return supervisor

    def supervise(self, name: str, run: Factory) -> None:
        """Run the background loop ``run(stop)`` now, restarted after a crash and reported by
        ``/readyz`` (``task:<name>``) while it is down; ``stop`` is set when the service stops
        (after its consumers and HTTP server)."""
        self._background.start(name, run)
        self._add_check(f"task:{name}", self._background, [name])

    def _add_check(self, check: str, supervisor: Supervisor, names: list[str]) -> None:
        async def up() -> bool:
            return all(supervisor.is_up(n) for n in names)

        self._checks[check] = up

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
                timeouts=s.db_timeouts(),
            )
        self._checks.update(self._dependency_checks())
        if self._setup is not None:
            await self._setup(self)
        try:
            self._check_every_consumer_is_read()
        except RuntimeError:
            await self.stop()
            raise
        self.routes.extend(health.health_routes(self.name, self._checks))
        self._server = build_server(self.routes, s.http_host, s.http_port, self.app)
        self._tasks.append(asyncio.create_task(self._server.serve(), name=f"{self.name}-http"))
        self._start_workers()
        watch = dlq.MaxDeliveriesWatch(self.nc, self.js, self.name, self._read)
        self._advisories = await watch.start()
        while not self._server.started:
            if self._tasks[0].done():
                self._tasks[0].result()  # surfaces a bind error
            await asyncio.sleep(0.02)
        logger.info("service started", extra={"http_port": s.http_port})

    def _start_workers(self) -> None:
        by_durable: dict[str, list[str]] = {}
        for c in self._consumers:
            names = by_durable.setdefault(c.spec.durable, [])
            names.append(f"consumer:{c.spec.durable}" + (f"#{len(names) + 1}" if names else ""))
            self._workers.start(names[-1], c.run)
        for durable, names in by_durable.items():
            self._add_check(f"consumer:{durable}", self._workers, names)
        for p in self._partitioned:
            name = f"partitions:{p.leases.group}"
            self._workers.start(name, p.run)
            self._add_check(name, self._workers, [name])

    async def stop(self) -> None:
        self.stopping.set()
        grace = self.settings.shutdown_grace_s
        for sub in self._advisories:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await self._workers.wait(grace)
        if self._server is not None:
            self._server.should_exit = True
            await asyncio.wait(self._tasks[:1], timeout=grace)
        await self._background.stop(grace)
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
        read = {(c.stream, c.durable) for c in self._read}
        unread = [c.durable for c in self.consumer_specs if (c.stream, c.durable) not in read]
        if unread:
            raise RuntimeError(
                f"{self.name} declares durable consumers no handler reads: {', '.join(unread)}"
            )

    def readiness_checks(self) -> dict[str, health.Check]:
        """What ``/readyz`` runs: NATS and the database reachable, every supervised task up."""
        return self._checks

    def _dependency_checks(self) -> dict[str, health.Check]:
        async def nats_ok() -> bool:
            return self.nc.is_connected

        checks: dict[str, health.Check] = {"nats": nats_ok}
        if self._pool is not None:
            pool = self._pool

            async def db_ok() -> bool:
                return bool(await pool.fetchval("SELECT 1"))

            checks["database"] = db_ok
        return checks


class ConsumerWork:
    """The runtime's :class:`Consumer` as the work on one owned partition
    (``zapflow.runtime.partitions.PartitionWork``)."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self._stop = asyncio.Event()
        self._ended = asyncio.Event()

    async def run(self) -> None:
        try:
            await self._consumer.run(self._stop)
        finally:
            self._ended.set()

    def stop(self) -> None:
        self._stop.set()

    async def fetching_stopped(self) -> None:
        """The consumer's loop has ended: the message in hand finished, the rest nak'ed."""
        await self._ended.wait()
