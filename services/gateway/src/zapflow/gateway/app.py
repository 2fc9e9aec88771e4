"""Composition root of the gateway service.

``create_service(settings)`` returns the runtime :class:`Service`; its ``setup`` hook builds the
gateway's parts on top of the service's NATS connection and database pool:

* the secret box (``ZF_GATEWAY_SECRETS_KEY``) and the webhook channel cache, loaded before the
  HTTP server starts, so the first webhook already finds its channel;
* background tasks, supervised by the runtime (restarted after a crash, ``/readyz`` names one
  that is down): the PostgreSQL listener (channel changes, outbox inserts), the cache
  maintenance loop and the outbox relay;
* the ``CHANNEL_CREDENTIALS`` responder;
* the ``zf_inbound_bodies`` object store bucket (claim check for bodies too large to travel
  inline: the inline limit follows the NATS server's ``max_payload``);
* the command log (``send_requests`` + outbox) the send and consent routes write through;
* the ASGI app (:func:`zapflow.gateway.api.build_app`), with ``app.state.service``.

Besides its own streams it declares those its commands go to (``ZF_SENDING`` for API sends,
``ZF_COMPLIANCE`` for consent changes; ``zapflow.contracts.access.streams_declared_by``): the
outbox relay publishes in commit order, so a stream missing until its owner first starts would
hold back every later event, channel changes too.

Everything started here is stopped through ``svc.resources`` when the service stops.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from importlib.resources import files
from typing import Final

from zapflow.contracts.access import streams_declared_by
from zapflow.contracts.streams import INBOUND_BODIES, consumers_owned_by
from zapflow.gateway import credentials
from zapflow.gateway.api import build_app
from zapflow.gateway.authlimit import AuthLimits, FailedAuthLimiter
from zapflow.gateway.cache import RELOAD, ChannelCache, pg_cache
from zapflow.gateway.command_log import CommandLog, PgCommandLog
from zapflow.gateway.crypto import SecretBox
from zapflow.gateway.outbox import OutboxRelay
from zapflow.gateway.pgnotify import PgListener
from zapflow.gateway.ratelimit import FailureGuard, FloodGuard
from zapflow.gateway.settings import Settings
from zapflow.gateway.webhooks import WebhookEndpoints
from zapflow.runtime.bodies import BodyStore, inline_limit
from zapflow.runtime.service import Service

NAME: Final = "gateway"
CHANNELS_NOTIFY: Final = "zf_gateway_channels"
OUTBOX_NOTIFY: Final = "zf_gateway_outbox"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gateway:
    """The gateway's parts, reachable from requests as ``request.app.state.gateway``."""

    settings: Settings
    box: SecretBox
    cache: ChannelCache
    relay: OutboxRelay
    commands: CommandLog
    auth_limiter: FailedAuthLimiter


async def setup(svc: Service, settings: Settings) -> Gateway:
    """Build and start the gateway's parts; sets ``svc.app``."""
    if settings.uses_dev_secrets_key:  # settings refuse it outside development
        logger.warning("development deployment: using the public development secrets key")
    box = SecretBox.from_setting(settings.secrets_key.get_secret_value())
    cache = pg_cache(svc.pool, box)
    await cache.reload()
    relay = OutboxRelay(
        svc.pool,
        svc.js,
        poll_s=settings.outbox_poll_s,
        publish_timeout_s=settings.webhook_publish_timeout_s,
        retention_days=settings.outbox_retention_days,
        idempotency_retention_days=settings.idempotency_retention_days,
    )
    limits = AuthLimits(
        address_rate_per_s=settings.auth_failure_rate_per_s,
        address_burst=settings.auth_failure_burst,
        prefix_rate_per_s=settings.auth_failure_rate_per_s,
        prefix_burst=settings.auth_failure_burst,
    )
    gateway = Gateway(
        settings=settings,
        box=box,
        cache=cache,
        relay=relay,
        commands=PgCommandLog(svc.pool),
        auth_limiter=FailedAuthLimiter(limits),
    )

    async def on_connect() -> None:
        cache.notify(RELOAD)
        relay.wake()

    listener = PgListener(
        settings.database_url.get_secret_value(),
        {CHANNELS_NOTIFY: cache.notify, OUTBOX_NOTIFY: relay.wake},
        on_connect=on_connect,
    )
    refresh_s = settings.channel_cache_refresh_s
    svc.supervise("gateway-pg-listener", listener.run)
    svc.supervise("gateway-channel-cache", lambda stop: cache.maintain(stop, refresh_s))
    svc.supervise("gateway-outbox-relay", relay.run)
    await credentials.serve(svc, svc.pool, box)

    bodies = BodyStore(svc.js, INBOUND_BODIES, limits=settings.stream_limits())
    await bodies.declare()
    webhooks = WebhookEndpoints(
        cache,
        FloodGuard(settings.webhook_rate_per_s, settings.webhook_burst),
        svc.nc,
        max_body_bytes=settings.webhook_max_body_bytes,
        publish_timeout_s=settings.webhook_publish_timeout_s,
        tracing=settings.otel_endpoint is not None,
        failures=FailureGuard(settings.webhook_failures_per_s, settings.webhook_failure_burst),
        bodies=bodies,
        inline_max_bytes=inline_max_bytes(settings, svc.nc.max_payload),
        client_ip_header=settings.webhook_client_ip_header,
    )
    svc.app = build_app(svc, gateway, webhooks)
    if settings.gc_freeze:
        # Everything built so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise stall the loop for tens of ms every few seconds of load.
        gc.collect()
        gc.freeze()
    logger.info("gateway ready", extra={"channels": len(cache)})
    return gateway


def inline_max_bytes(settings: Settings, max_payload: int) -> int:
    """Bodies up to this size travel inline in the raw event; larger ones go to the object store.

    The NATS server's ``max_payload`` decides: a configured value it cannot carry is refused
    (the gateway would answer 503 to every such webhook, forever)."""
    fits = inline_limit(max_payload)
    configured = settings.webhook_inline_max_bytes
    if configured is None:
        return fits
    if configured > fits:
        raise ValueError(
            f"ZF_GATEWAY_WEBHOOK_INLINE_MAX_BYTES={configured} does not fit the NATS server's "
            f"max_payload {max_payload} (at most {fits})"
        )
    return configured


def create_service(settings: Settings) -> Service:
    async def setup_hook(svc: Service) -> None:
        await setup(svc, settings)

    return Service(
        NAME,
        settings,
        streams=streams_declared_by(NAME),
        consumers=consumers_owned_by(NAME),
        migrations=files("zapflow.gateway") / "migrations",
        setup=setup_hook,
    )
