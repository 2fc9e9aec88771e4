"""Provider webhooks: ``POST /webhooks/{provider}/{channel_id}`` (the hot path), Meta's app-level
``POST /webhooks/meta`` (routed by ``phone_number_id``) and Meta's ``GET`` subscription handshakes.

A plain ASGI app that the gateway app calls before FastAPI's middleware and router
(:class:`zapflow.gateway.api.GatewayApp`): measured, the framework layers cost more per request
than everything this module does, so the hot path skips them. It reads no database: channels
come from the in-memory :class:`~zapflow.gateway.cache.ChannelCache`. In order, a per-channel
POST is answered

====  ====================================================================================
429   the client address has used up its budget of *failed* requests (401/403/404 below):
      answered before anything else is done for it (``Retry-After``)
404   unknown or disabled channel, or the path's provider is not the channel's
503   the channel's secrets cannot be opened (wrong secrets key): the provider retries
413   ``Content-Length`` over ``webhook_max_body_bytes`` (before reading), or the body
      grows past it while streaming
401   signature or token missing or wrong (``zapflow.providers`` adapter); nothing is stored.
      A wrong ``?token=`` is refused before the body is read
429   the channel's flood limit (token bucket) is exhausted; ``Retry-After`` in seconds. Taken
      only by authenticated requests, so junk cannot spend a channel's budget
400   not the provider's envelope (:mod:`zapflow.gateway.envelope`), ``{"error": reason}``
403   the payload names another business number or instance than the channel's registered
      one (``provider_account``, else ``phone``): nothing is stored
503   JetStream did not acknowledge in time, or NATS is unreachable: the provider retries
200   stored: the ``WebhookReceived`` event was acknowledged by JetStream (``{"id": …}``)
====  ====================================================================================

The event carries the body byte for byte, minus provider secrets it carried (Evolution's
``apikey``: :mod:`zapflow.providers.scrub`), its content type, the headers parsing needs
(:data:`KEPT_HEADERS`: never authentication headers) and the query without secret tokens. A body
over the inline limit is stored in the ``zf_inbound_bodies`` object store first and the event
names it (``body_ref``). ``Nats-Msg-Id`` is the event id, so publishing it again could not store
it twice. The app-level Meta URL is :mod:`zapflow.gateway.meta_app`.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol

import orjson
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import APIError
from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from starlette.types import Receive, Scope, Send

from zapflow.contracts import headers as h
from zapflow.gateway.cache import ChannelCache, WebhookChannel
from zapflow.gateway.envelope import inspect
from zapflow.gateway.inbound_event import EVENT_TYPE, encode_event, new_event_id
from zapflow.gateway.meta_app import MetaAppEndpoint
from zapflow.gateway.ratelimit import FailureGuard, FloodGuard
from zapflow.gateway.webhook_http import (
    FOREIGN,
    JSON,
    NO_METHOD,
    NO_ROUTE,
    NOT_FOUND,
    NOT_STORED,
    TEXT,
    TOO_LARGE,
    UNAVAILABLE,
    Answer,
    NotStored,
    error,
    request_headers,
    request_query,
    retry_after,
    too_long,
)
from zapflow.providers.base import tokens_equal
from zapflow.providers.errors import WebhookAuthError
from zapflow.providers.identity import foreign_identities, receiving_identities
from zapflow.providers.meta import verify_handshake
from zapflow.providers.scrub import scrub
from zapflow.runtime import telemetry

logger = logging.getLogger(__name__)

PREFIX: Final = "/webhooks/"
"""Paths under this prefix are the webhook app's."""

KEPT_HEADERS: Final = ("content-encoding",)
"""Request headers copied into the event besides ``Content-Type`` (its own field)."""

SECRET_QUERY: Final = frozenset(
    {"token", "hub.verify_token", "apikey", "api_key", "access_token", "key", "secret"}
)
"""Query parameters never copied into the event (lower-cased names)."""

WEBHOOKS = Counter(
    "zf_gateway_webhooks_total", "Provider webhooks by outcome.", ["provider", "outcome"]
)
_PROVIDER_LABELS: Final = frozenset({"meta", "evolution", "zapi", "wuzapi"})


class BodyWriter(Protocol):
    async def put(self, name: str, body: bytes) -> None: ...


class WebhookEndpoints:
    """The webhook ASGI app over a channel cache, flood guards and NATS (JetStream)."""

    def __init__(
        self,
        cache: ChannelCache,
        guard: FloodGuard,
        nc: NATS,
        *,
        max_body_bytes: int,
        publish_timeout_s: float,
        tracing: bool = False,
        failures: FailureGuard | None = None,
        bodies: BodyWriter | None = None,
        inline_max_bytes: int | None = None,
        client_ip_header: str | None = None,
    ) -> None:
        """``tracing``: wrap each publish in a producer span and send its context along (only
        worth its cost when spans are exported). Bodies over ``inline_max_bytes`` go to
        ``bodies`` (claim check); None: every body travels inline."""
        self.cache = cache
        self._guard = guard
        self._nc = nc
        self.max_body = max_body_bytes
        self._timeout = publish_timeout_s
        self._outcomes: dict[tuple[str, str], Counter] = {}
        self._tracing = tracing
        self.failures = failures if failures is not None else FailureGuard(1.0, 30)
        self._bodies = bodies
        self._inline_max = inline_max_bytes
        self._ip_header = client_ip_header.lower() if client_ip_header else None
        self._meta_app = MetaAppEndpoint(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"].split("/")  # ["", "webhooks", provider, channel_id]
        method = scope["method"]
        try:
            if len(parts) == 3 and parts[2] == "meta":
                answer = await self._meta_app(method, scope, receive)
            elif len(parts) != 4 or not parts[3]:
                answer = NO_ROUTE
            elif method == "POST":
                answer = await self.receive(parts[2], parts[3], scope, receive)
            elif method == "GET" and parts[2] == "meta":
                answer = self.handshake(parts[3], scope)
            else:
                answer = NO_METHOD
        except Exception:
            logger.exception("webhook failed", extra={"channel_id": parts[-1][:64]})
            answer = error(500, "internal error")
        status, body, headers = answer
        length = (b"content-length", str(len(body)).encode())
        await send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
        await send({"type": "http.response.body", "body": body})

    def count(self, provider: str, outcome: str) -> None:
        label = provider if provider in _PROVIDER_LABELS else "other"  # the path is untrusted
        counter = self._outcomes.get((label, outcome))
        if counter is None:
            counter = self._outcomes[(label, outcome)] = WEBHOOKS.labels(label, outcome)
        counter.inc()

    def source(self, scope: Scope, headers: dict[str, str]) -> str:
        """The client address: the last entry of the configured proxy header, else the peer."""
        if self._ip_header is not None:
            forwarded = headers.get(self._ip_header)
            if forwarded:
                return forwarded.rsplit(",", 1)[-1].strip()[:64]
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    def refused(self, source: str, provider: str, outcome: str, answer: Answer) -> Answer:
        """Count a failed (unauthenticated) request against its source, and answer it."""
        self.failures.failed(source)
        self.count(provider, outcome)
        return answer

    def source_limited(self, source: str, provider: str) -> Answer | None:
        wait = self.failures.blocked(source)
        if not wait:
            return None
        self.count(provider, "source_limited")
        return error(429, "too many failed requests", retry_after(wait))

    async def read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it exceeds the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    return None
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def flood_limited(self, channel_id: str, provider: str) -> Answer | None:
        wait = self._guard.take(channel_id)
        if not wait:
            return None
        self.count(provider, "rate_limited")
        return error(429, "too many requests", retry_after(wait))

    async def receive(
        self, provider: str, channel_id: str, scope: Scope, receive: Receive
    ) -> Answer:
        headers = request_headers(scope)
        source = self.source(scope, headers)
        limited = self.source_limited(source, provider)
        if limited is not None:
            return limited
        channel = self.cache.get(channel_id)
        if channel is None or not channel.enabled or channel.provider != provider:
            return self.refused(source, provider, "unknown_channel", NOT_FOUND)
        secrets = channel.secrets
        if secrets is None:
            self.count(provider, "unavailable")
            return UNAVAILABLE
        if too_long(headers.get("content-length"), self.max_body):
            self.count(provider, "too_large")
            return TOO_LARGE
        query = request_query(scope)
        if secrets.path_token is not None and not tokens_equal(
            query.get("token"), secrets.path_token
        ):  # refused before the body is read
            return self.refused(
                source, provider, "unauthorized", error(401, "path token missing or wrong")
            )
        body = await self.read_body(receive)
        if body is None:
            self.count(provider, "too_large")
            return TOO_LARGE
        try:
            channel.adapter.verify_webhook(headers, body, query, secrets)
        except WebhookAuthError as exc:
            logger.warning("webhook refused: %s", exc.reason, extra={"channel_id": channel_id})
            return self.refused(source, provider, "unauthorized", error(401, exc.reason))
        limited = self.flood_limited(channel_id, provider)
        if limited is not None:
            return limited
        content_type = headers.get("content-type", "")
        reason, data = inspect(provider, body, content_type)
        if reason is not None:
            self.count(provider, "malformed")
            return error(400, reason)
        foreign = foreign_identities(
            receiving_identities(provider, data), account=channel.account, phone=channel.phone
        )
        if foreign:
            logger.warning(
                "webhook names another channel's identity",
                extra={"channel_id": channel_id, "accounts": [i.account for i in foreign][:8]},
            )
            self.count(provider, "identity_mismatch")
            return FOREIGN
        try:
            event_id = await self.store(channel, scrub(body, data), headers, query)
        except NotStored:
            self.count(provider, "not_stored")
            return NOT_STORED
        self.count(provider, "stored")
        return 200, b'{"id":"' + event_id.encode() + b'"}', [JSON]

    async def store(
        self,
        channel: WebhookChannel,
        body: bytes,
        headers: dict[str, str],
        query: dict[str, str],
        *,
        event_id: str | None = None,
    ) -> str:
        """Store ``body`` as ``channel``'s raw webhook; its event id once JetStream acknowledged
        it (and, for a large body, the object store acknowledged the body first)."""
        body_ref = None
        try:
            if self._inline_max is not None and len(body) > self._inline_max:
                if self._bodies is None:
                    raise NotStored
                event_id = event_id or new_event_id()
                await self._bodies.put(event_id, body)
                body_ref = event_id
            event_id, payload = encode_event(
                tenant_id=channel.tenant_id,
                provider=channel.provider,
                channel_id=channel.channel_id,
                body=body,
                content_type=headers.get("content-type") or None,
                headers={name: headers[name] for name in KEPT_HEADERS if name in headers},
                query={k: v for k, v in query.items() if k.lower() not in SECRET_QUERY},
                event_id=event_id,
                body_ref=body_ref,
            )
            nats_headers = {
                h.NATS_MSG_ID: event_id,
                h.ZF_TYPE: EVENT_TYPE,
                h.ZF_TENANT: channel.tenant_id,
                h.CONTENT_TYPE: h.JSON,
            }
            if self._tracing:
                with telemetry.tracer.start_as_current_span(
                    "webhook publish", kind=SpanKind.PRODUCER
                ):
                    await self._publish(channel.subject, payload, telemetry.inject(nats_headers))
            else:
                await self._publish(channel.subject, payload, nats_headers)
        except (NatsError, TimeoutError) as exc:
            logger.warning(
                "webhook not stored: jetstream publish failed",
                extra={"channel_id": channel.channel_id},
                exc_info=True,
            )
            raise NotStored from exc
        return event_id

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """A JetStream publish, acknowledged: what ``js.publish`` does, with the ack read by
        orjson instead of the stdlib decoder and a dataclass (3 µs of a ~60 µs request)."""
        reply = await self._nc.request(subject, payload, timeout=self._timeout, headers=headers)
        ack = orjson.loads(reply.data)
        if "error" in ack:
            raise APIError.from_error(ack["error"])

    def handshake(self, channel_id: str, scope: Scope) -> Answer:
        """Meta's subscription check: echo ``hub.challenge`` if ``hub.verify_token`` matches."""
        headers = request_headers(scope)
        source = self.source(scope, headers)
        limited = self.source_limited(source, "meta")
        if limited is not None:
            return limited
        channel = self.cache.get(channel_id)
        if channel is None or not channel.enabled or channel.provider != "meta":
            return self.refused(source, "meta", "unknown_channel", NOT_FOUND)
        if channel.secrets is None:
            return UNAVAILABLE
        try:
            challenge = verify_handshake(request_query(scope), channel.secrets.verify_token)
        except WebhookAuthError as exc:
            logger.warning("handshake refused: %s", exc.reason, extra={"channel_id": channel_id})
            return self.refused(source, "meta", "unauthorized", error(403, exc.reason))
        return 200, challenge.encode(), [TEXT]
