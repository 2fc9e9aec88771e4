"""NATS connection, JetStream topology and publishing: the one broker factory.

Streams and consumers are declared as data in ``zapflow.contracts.streams``; :func:`declare`
creates or updates them idempotently at start-up. :class:`Publisher` is the only way services
publish events: JetStream publish with ``Nats-Msg-Id`` = event id (server-side de-duplication),
the type and tenant in headers, and the current trace context.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import NotFoundError, ServiceUnavailableError

from zapflow.contracts import headers as h
from zapflow.contracts.access import ADMIN, inbox_prefix, may_update
from zapflow.contracts.envelope import Event
from zapflow.contracts.specs import ObjectStoreSpec
from zapflow.contracts.streams import ALL_OBJECT_STORES, ALL_STREAMS, ConsumerSpec, StreamSpec
from zapflow.runtime import metrics, natsauth, telemetry

logger = logging.getLogger(__name__)

_RETENTION = {
    "limits": RetentionPolicy.LIMITS,
    "workqueue": RetentionPolicy.WORK_QUEUE,
    "interest": RetentionPolicy.INTEREST,
}


def server_urls(url: str) -> list[str]:
    """``NATS_URL`` as a server list: one URL, or several comma-separated (the nodes of a
    cluster, ``nats://a:4222,nats://b:4222``); nats-py takes a list, not the joined form."""
    return [part.strip() for part in url.split(",") if part.strip()]


class IdentityRefusedError(ConnectionError):
    """nats-server refused the identity this process connects with (wrong or missing seed)."""


def _refused(exc: BaseException) -> bool:
    return "authorization violation" in str(exc).lower()


async def connect(
    url: str,
    name: str,
    *,
    identity: str,
    seed: str | None = None,
    tls_ca_file: Path | None = None,
    max_reconnect_attempts: int = -1,
) -> NATS:
    """Connect as ``identity`` (its NKey ``seed``; anonymous when None, for servers without
    authorization) with its own reply inbox, reconnecting forever by default: a service keeps
    running through NATS restarts and waits for a server that is not up yet. ``url`` may name
    several servers (:func:`server_urls`): the client moves to another when one goes away. A
    server that refuses the identity on the first connection is a configuration error:
    :class:`IdentityRefusedError` at once instead of retrying forever. ``tls_ca_file``
    verifies a ``tls://`` server against a private CA.
    """
    refused = asyncio.Event()

    async def on_error(exc: Exception) -> None:
        if _refused(exc):
            refused.set()
            logger.error("nats refused this identity", extra={"identity": identity})
        elif "permissions violation" in str(exc).lower():
            logger.error("nats permissions violation: %s", exc, extra={"identity": identity})
        else:
            logger.warning("nats connection error: %s", type(exc).__name__)

    tls = ssl.create_default_context(cafile=str(tls_ca_file)) if tls_ca_file else None
    connecting = asyncio.ensure_future(
        nats.connect(
            server_urls(url),
            name=name,
            max_reconnect_attempts=max_reconnect_attempts,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            connect_timeout=5,
            nkeys_seed_str=seed,
            inbox_prefix=inbox_prefix(identity),
            tls=tls,
        )
    )
    watch = asyncio.ensure_future(refused.wait())
    await asyncio.wait({connecting, watch}, return_when=asyncio.FIRST_COMPLETED)
    watch.cancel()
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        raise IdentityRefusedError(f"nats-server refused the {identity!r} identity")
    return connecting.result()


async def connect_tooling(url: str, name: str, **kwargs: Any) -> NATS:
    """Connect operator tooling (CLI, benchmarks, tests) as ``admin``, with the seed from
    ``NATS_NKEY_SEED`` / ``NATS_NKEY_SEED_FILE`` (anonymous when neither is set)."""
    kwargs.setdefault("max_reconnect_attempts", 3)
    return await connect(url, name, identity=ADMIN, seed=natsauth.admin_seed(), **kwargs)


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """How this deployment stores the declared streams: replicas, and per-stream size and age.

    Every service that declares a stream must be given the same limits (they are shared
    settings, ``ZF_STREAM_*``), or each start-up would update the stream to its own values.
    ``max_bytes`` / ``max_age_s`` map stream names to values that replace the declaration's.
    """

    replicas: int = 1
    max_bytes: Mapping[str, int] = field(default_factory=dict)
    max_age_s: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 5:
            raise ValueError("stream replicas must be between 1 and 5")
        streams = {spec.name for spec in ALL_STREAMS}
        buckets = {bucket.stream for bucket in ALL_OBJECT_STORES}  # sized, never aged here
        for what, names, known in (
            ("max_bytes", self.max_bytes, streams | buckets),
            ("max_age", self.max_age_s, streams),
        ):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(f"{what} for unknown streams {unknown}; known: {sorted(known)}")
        for spec in ALL_STREAMS:
            self.apply(spec)  # a size or age the declaration would refuse fails here
        for bucket in ALL_OBJECT_STORES:
            self.bucket_bytes(bucket)

    def bucket_bytes(self, spec: ObjectStoreSpec) -> int:
        """The size of an object store bucket (key: its stream name, ``OBJ_<bucket>``)."""
        size = self.max_bytes.get(spec.stream, spec.max_bytes)
        if size <= 0:
            raise ValueError(f"{spec.stream}: max_bytes must be positive")
        return size

    def apply(self, spec: StreamSpec) -> StreamSpec:
        """``spec`` with this deployment's size and age (validated like the declaration)."""
        return dataclasses.replace(
            spec,
            max_bytes=self.max_bytes.get(spec.name, spec.max_bytes),
            max_age_s=self.max_age_s.get(spec.name, spec.max_age_s),
        )


def stream_config(spec: StreamSpec, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=_RETENTION[spec.retention],
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=spec.duplicate_window_s,
        max_age=spec.max_age_s or 0,
        max_bytes=spec.max_bytes,
        discard=DiscardPolicy.NEW if spec.discard == "new" else DiscardPolicy.OLD,
        description=spec.description,
        max_msgs_per_subject=spec.max_msgs_per_subject or -1,
        subject_transform=(
            SubjectTransform(src=spec.subject_transform[0], dest=spec.subject_transform[1])
            if spec.subject_transform
            else None
        ),
    )


def consumer_config(spec: ConsumerSpec) -> ConsumerConfig:
    filters = list(spec.filter_subjects)
    return ConsumerConfig(
        durable_name=spec.durable,
        name=spec.durable,
        description=spec.description,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL if spec.deliver_policy == "all" else DeliverPolicy.NEW,
        ack_wait=spec.ack_wait_s,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        backoff=list(spec.backoff_s) or None,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )


async def declare(
    js: JetStreamContext,
    streams: Iterable[StreamSpec],
    consumers: Iterable[ConsumerSpec] = (),
    *,
    limits: StreamLimits | None = None,
    attempts: int = 8,
    service: str | None = None,
) -> None:
    """Create each missing stream, update those ``service`` owns (all of them when None), then
    create or update each durable pull consumer. Safe to run concurrently.

    Consumers are created with the replicas of their stream (the server's default for durables).
    On a cluster, creating a replicated stream waits for its raft group, and the JetStream API
    answers 503 or not at all while a leader is being elected: each step is retried (up to
    ``attempts`` times, backing off) before start-up gives up.
    """
    limits = limits or StreamLimits()
    for spec in streams:
        config = stream_config(limits.apply(spec), limits.replicas)
        update = service is None or may_update(service, spec)
        await _retrying(functools.partial(_ensure_stream, js, config, update), attempts)
    for cspec in consumers:
        add = functools.partial(js.add_consumer, cspec.stream, consumer_config(cspec))
        await _retrying(add, attempts)


async def _ensure_stream(js: JetStreamContext, config: StreamConfig, update: bool) -> None:
    try:
        await js.stream_info(str(config.name))
    except NotFoundError:
        await js.add_stream(config)
        logger.info("created stream %s", config.name)
    else:
        if update:  # only the owner changes a stream's configuration
            await js.update_stream(config)


async def _retrying(step: Callable[[], Awaitable[object]], attempts: int) -> None:
    for attempt in range(1, attempts + 1):
        try:
            await step()
            return
        except (NatsTimeoutError, ServiceUnavailableError, NoRespondersError) as exc:
            if attempt == attempts:
                raise
            logger.warning(
                "jetstream not answering, will retry",
                extra={"attempt": attempt, "error": type(exc).__name__},
            )
            await asyncio.sleep(min(5.0, 0.5 * attempt))


def publish_headers(event: Event, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The envelope headers, ``extra`` on top, and the current trace context."""
    out = h.event_headers(event)
    if extra:
        out.update(extra)
    return telemetry.inject(out)


Publish = tuple[str, Event, "dict[str, str] | None"]
"""One publish: subject, event, extra headers."""


class Publisher:
    """Publishes contracts to JetStream; the port handlers receive as ``publish``."""

    def __init__(self, js: JetStreamContext, timeout: float = 5.0) -> None:
        self._js = js
        self._timeout = timeout

    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> PubAck:
        metrics.PUBLISHED.labels(event.type).inc()
        return await self._js.publish(
            subject,
            event.model_dump_json().encode(),
            timeout=self._timeout,
            headers=publish_headers(event, headers),
        )

    async def many(self, items: Sequence[Publish]) -> list[PubAck]:
        """Publish every ``(subject, event, headers)`` pipelined (``publish_async``: all sent,
        then the acknowledgements awaited together) and return their acks in order. Raises the
        first failure, or ``TimeoutError`` when an ack did not come within the timeout; what was
        acknowledged stays stored (``Nats-Msg-Id`` makes a retry of the whole list store nothing
        twice)."""
        futures: list[asyncio.Future[PubAck]] = []
        try:
            for subject, event, headers in items:
                metrics.PUBLISHED.labels(event.type).inc()
                futures.append(
                    await self._js.publish_async(
                        subject,
                        event.model_dump_json().encode(),
                        headers=publish_headers(event, headers),
                    )
                )
            async with asyncio.timeout(self._timeout):
                return list(await asyncio.gather(*futures))
        finally:
            for future in futures:
                if not future.done():
                    future.cancel()  # frees its place among the pending async publishes
