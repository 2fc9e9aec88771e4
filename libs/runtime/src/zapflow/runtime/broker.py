"""NATS connection, JetStream topology and publishing: the one broker factory.

Streams and consumers are declared as data in ``zapflow.contracts.streams``; :func:`declare`
creates or updates them idempotently at start-up. :class:`Publisher` is the only way services
publish events: JetStream publish with ``Nats-Msg-Id`` = event id (server-side de-duplication),
the type and tenant in headers, and the current trace context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    SubjectTransform,
)
from nats.js.errors import NotFoundError

from zapflow.contracts import headers as h
from zapflow.contracts.access import ADMIN, inbox_prefix, may_update
from zapflow.contracts.envelope import Event
from zapflow.contracts.streams import ConsumerSpec, StreamSpec
from zapflow.runtime import metrics, natsauth, telemetry

logger = logging.getLogger(__name__)

_RETENTION = {
    "limits": RetentionPolicy.LIMITS,
    "workqueue": RetentionPolicy.WORK_QUEUE,
    "interest": RetentionPolicy.INTEREST,
}


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
    running through NATS restarts and waits for a server that is not up yet. A server that
    refuses the identity on the first connection is a configuration error:
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
            url,
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


def stream_config(spec: StreamSpec, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=_RETENTION[spec.retention],
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=spec.duplicate_window_s,
        max_age=spec.max_age_s or 0,
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
    replicas: int = 1,
    service: str | None = None,
) -> None:
    """Create each missing stream, update those ``service`` owns (all of them when None), then
    create or update each durable pull consumer. Safe to run concurrently."""
    for spec in streams:
        config = stream_config(spec, replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
            logger.info("created stream %s", spec.name)
        else:
            if service is None or may_update(service, spec):
                await js.update_stream(config)
    for cspec in consumers:
        await js.add_consumer(cspec.stream, consumer_config(cspec))


def publish_headers(event: Event, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The envelope headers, ``extra`` on top, and the current trace context."""
    out = h.event_headers(event)
    if extra:
        out.update(extra)
    return telemetry.inject(out)


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
