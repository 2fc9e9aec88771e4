"""Composition root of the ingest service.

``create_service(settings, deps)`` wires the ingest-raw and ingest-outbound consumers, the
read-side responders (queue group ``ingest``), the media worker and the retention purge onto the
runtime's :class:`Service`. ``Deps`` lets tests and benchmarks swap the edges: the consumer
specs (unique durables filtered to a test's tenants), the HTTP transport of media downloads, the
media store, the credentials lookup, and the egress policy of media downloads.

Media downloads use the egress guard's client (``zapflow.runtime.egress``): every URL they
fetch is chosen by a tenant or a payload. The S3 media store, whose endpoint the operator
configures, has a client of its own without the guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Final

import httpx
from nats.aio.msg import Msg

from zapflow.contracts.access import streams_declared_by
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.streams import (
    INBOUND_BODIES,
    INGEST_OUTBOUND,
    INGEST_RAW,
    ConsumerSpec,
    consumers_owned_by,
)
from zapflow.ingest.adapters.pg_ingest import PgIngestStore
from zapflow.ingest.adapters.pg_media import PgMediaQueue
from zapflow.ingest.adapters.pg_outbound import PgOutboundStore
from zapflow.ingest.adapters.pg_queries import PgReadStore
from zapflow.ingest.handlers import handle_raw, handle_send
from zapflow.ingest.maintenance import Retention, run_purge
from zapflow.ingest.media.sources import MediaFetcher
from zapflow.ingest.media.store import media_store
from zapflow.ingest.media.worker import MediaWorker, WorkerSettings
from zapflow.ingest.outbound import SEND_EVENTS
from zapflow.ingest.ports import CredentialsLookup, MediaStore
from zapflow.ingest.queries import QueryHandlers
from zapflow.ingest.settings import Settings
from zapflow.runtime.bodies import BodyStore
from zapflow.runtime.credentials import ChannelCredentials
from zapflow.runtime.egress import EgressPolicy, guarded_client
from zapflow.runtime.service import Service

NAME: Final = "ingest"


@dataclass(frozen=True)
class Deps:
    """Replaceable edges; None means the production default built from settings.

    A test's own ``raw_consumer`` replaces every production durable: ingest then consumes send
    events only through an ``outbound_consumer`` of the test's own (None: none at all);
    ``outbound_consumer`` is ignored in production.
    """

    raw_consumer: ConsumerSpec = INGEST_RAW
    outbound_consumer: ConsumerSpec | None = None
    http_transport: httpx.AsyncBaseTransport | None = None
    """Replaces the guarded network of media downloads (``httpx.MockTransport`` in tests)."""
    egress: EgressPolicy | None = None
    """The egress policy of media downloads (None: ``ZF_EGRESS_ALLOW``, the system resolver)."""
    media_store: MediaStore | None = None
    credentials: CredentialsLookup | None = None
    background: bool = True  # media worker and purge tasks


def create_service(settings: Settings, deps: Deps | None = None) -> Service:
    deps = deps or Deps()
    consumers = _consumers(deps)

    async def setup(svc: Service) -> None:
        await _setup(svc, settings, deps)

    return Service(
        NAME,
        settings,
        streams=streams_declared_by(NAME),
        consumers=consumers,
        migrations=files("zapflow.ingest") / "migrations",
        setup=setup,
    )


def _consumers(deps: Deps) -> tuple[ConsumerSpec, ...]:
    """Production declares every ingest consumer; a test's own durables replace them all."""
    if deps.raw_consumer is INGEST_RAW:
        return consumers_owned_by(NAME)
    return (deps.raw_consumer,) + ((deps.outbound_consumer,) if deps.outbound_consumer else ())


def _outbound_consumer(deps: Deps) -> ConsumerSpec | None:
    """Where send events come from: ingest-outbound in production, else the test's own."""
    return INGEST_OUTBOUND if deps.raw_consumer is INGEST_RAW else deps.outbound_consumer


def _media_client(settings: Settings, deps: Deps) -> httpx.AsyncClient:
    """The client of media downloads: the egress guard's, unless a test replaced the network."""
    if deps.http_transport is not None:
        return httpx.AsyncClient(
            transport=deps.http_transport, timeout=settings.media_fetch_timeout_s
        )
    return guarded_client(
        deps.egress or settings.egress_policy(), timeout=settings.media_fetch_timeout_s
    )


async def _setup(svc: Service, settings: Settings, deps: Deps) -> None:
    client = _media_client(settings, deps)
    svc.resources.push_async_callback(client.aclose)
    store_client = httpx.AsyncClient(timeout=settings.media_fetch_timeout_s)
    svc.resources.push_async_callback(store_client.aclose)
    store = deps.media_store or media_store(settings, store_client)
    credentials = deps.credentials or ChannelCredentials(
        svc.nc, caller=NAME, ttl_s=60.0, timeout_s=settings.credentials_timeout_s
    )
    queue = PgMediaQueue(svc.pool)
    fetcher = MediaFetcher(
        client,
        credentials,
        queue.raw_body,
        max_bytes=settings.media_max_bytes,
        deadline_s=settings.media_fetch_timeout_s,
    )
    worker = MediaWorker(
        queue,
        fetcher,
        store,
        WorkerSettings(
            concurrency=settings.media_concurrency,
            max_attempts=settings.media_max_attempts,
            poll_s=settings.media_poll_s,
            lease_s=settings.media_fetch_timeout_s * 2 + 30,
        ),
    )
    raw_store = PgIngestStore(svc.pool, deps.raw_consumer.durable)
    publish = svc.publish
    bodies = BodyStore(svc.js, INBOUND_BODIES)  # the gateway declares it; opened on first use

    async def on_raw(msg: Msg) -> None:
        evt = WebhookReceived.model_validate_json(msg.data)
        await handle_raw(
            evt, store=raw_store, publish=publish, media_queued=worker.nudge, bodies=bodies
        )

    for _ in range(settings.raw_workers):  # pull workers sharing the durable
        svc.consume(deps.raw_consumer, on_raw, batch=settings.raw_batch)
    outbound = _outbound_consumer(deps)
    if outbound is not None:
        _consume_sends(svc, settings, outbound)
    handlers = QueryHandlers(PgReadStore(svc.pool), store)
    await handlers.serve(svc, concurrency=settings.query_concurrency)
    if deps.background:
        retention = Retention(
            webhook_log_days=settings.webhook_log_retention_days,
            outbox_days=settings.outbox_retention_days,
            inbox_days=settings.inbox_retention_days,
            pending_days=settings.pending_retention_days,
        )
        svc.supervise("ingest-media", worker.run)
        svc.supervise(
            "ingest-purge",
            lambda stop: run_purge(svc.pool, retention, settings.purge_interval_s, stop),
        )


def _consume_sends(svc: Service, settings: Settings, spec: ConsumerSpec) -> None:
    store = PgOutboundStore(svc.pool, spec.durable)
    publish = svc.publish

    async def on_send(msg: Msg) -> None:
        evt = SEND_EVENTS.validate_json(msg.data)
        await handle_send(evt, store=store, publish=publish)

    for _ in range(settings.outbound_workers):
        svc.consume(spec, on_send, batch=settings.outbound_batch)
