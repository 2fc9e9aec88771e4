"""Provider webhooks: ``POST /webhooks/{provider}/{channel_id}`` (the hot path) and Meta's
``GET /webhooks/meta/{channel_id}`` subscription handshake.

A plain ASGI app that the gateway app calls before FastAPI's middleware and router
(:class:`zapflow.gateway.api.GatewayApp`): measured, the framework layers cost more per request
than everything this module does, so the hot path skips them. It reads no database: the channel
comes from the in-memory :class:`~zapflow.gateway.cache.ChannelCache`. In order, a POST is
answered

====  ====================================================================================
404   unknown or disabled channel, or the path's provider is not the channel's
503   the channel's secrets cannot be opened (wrong secrets key): the provider retries
413   ``Content-Length`` over ``webhook_max_body_bytes`` (before reading), or the body
      grows past it while streaming
429   the channel's flood limit (token bucket) is exhausted; ``Retry-After`` in seconds
401   signature or token missing or wrong (``zapflow.providers`` adapter); nothing is stored
400   not the provider's envelope (:mod:`zapflow.gateway.envelope`), ``{"error": reason}``
503   JetStream did not acknowledge in time, or NATS is unreachable: the provider retries
200   stored: the ``WebhookReceived`` event was acknowledged by JetStream (``{"id": …}``)
====  ====================================================================================

The event carries the body byte for byte (base64), its content type, the headers parsing needs
(:data:`KEPT_HEADERS`: never authentication headers) and the query without secret tokens.
``Nats-Msg-Id`` is the event id, so publishing it again could not store it twice.
"""

from __future__ import annotations

import logging
import math
from typing import Final
from urllib.parse import parse_qsl

import orjson
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js.errors import APIError
from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from starlette.types import Receive, Scope, Send

from zapflow.contracts import headers as h
from zapflow.gateway.cache import ChannelCache
from zapflow.gateway.envelope import malformed
from zapflow.gateway.inbound_event import EVENT_TYPE, encode_event
from zapflow.gateway.ratelimit import FloodGuard
from zapflow.providers.errors import WebhookAuthError
from zapflow.providers.meta import verify_handshake
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

_JSON: Final = (b"content-type", b"application/json")
_TEXT: Final = (b"content-type", b"text/plain; charset=utf-8")

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def _error(status: int, reason: str, *extra: tuple[bytes, bytes]) -> Answer:
    body = b'{"error":"' + reason.replace('"', "'").encode() + b'"}'
    return status, body, [_JSON, *extra]


_NOT_FOUND: Final = _error(404, "unknown channel")
_TOO_LARGE: Final = _error(413, "body too large")
_UNAVAILABLE: Final = _error(503, "channel unavailable")
_NOT_STORED: Final = _error(503, "not stored, retry", (b"retry-after", b"1"))
_NO_ROUTE: Final = _error(404, "not found")
_NO_METHOD: Final = _error(405, "method not allowed")


def _too_long(content_length: str, limit: int) -> bool:
    try:
        return int(content_length) > limit
    except ValueError:
        return False  # the server rejects a malformed Content-Length; the stream limit holds


class WebhookEndpoints:
    """The webhook ASGI app over a channel cache, a flood guard and NATS (JetStream)."""

    def __init__(
        self,
        cache: ChannelCache,
        guard: FloodGuard,
        nc: NATS,
        *,
        max_body_bytes: int,
        publish_timeout_s: float,
        tracing: bool = False,
    ) -> None:
        """``tracing``: wrap each publish in a producer span and send its context along (only
        worth its cost when spans are exported)."""
        self._cache = cache
        self._guard = guard
        self._nc = nc
        self._max_body = max_body_bytes
        self._timeout = publish_timeout_s
        self._outcomes: dict[tuple[str, str], Counter] = {}
        self._tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"].split("/")  # ["", "webhooks", provider, channel_id]
        method = scope["method"]
        try:
            if len(parts) != 4 or not parts[3]:
                answer = _NO_ROUTE
            elif method == "POST":
                answer = await self.receive(parts[2], parts[3], scope, receive)
            elif method == "GET" and parts[2] == "meta":
                answer = self.handshake(parts[3], scope)
            else:
                answer = _NO_METHOD
        except Exception:
            logger.exception("webhook failed", extra={"channel_id": parts[-1][:64]})
            answer = _error(500, "internal error")
        status, body, headers = answer
        length = (b"content-length", str(len(body)).encode())
        await send({"type": "http.response.start", "status": status, "headers": [*headers, length]})
        await send({"type": "http.response.body", "body": body})

    def _count(self, provider: str, outcome: str) -> None:
        label = provider if provider in _PROVIDER_LABELS else "other"  # the path is untrusted
        counter = self._outcomes.get((label, outcome))
        if counter is None:
            counter = self._outcomes[(label, outcome)] = WEBHOOKS.labels(label, outcome)
        counter.inc()

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it exceeds the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self._max_body:
                    return None
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def receive(
        self, provider: str, channel_id: str, scope: Scope, receive: Receive
    ) -> Answer:
        channel = self._cache.get(channel_id)
        if channel is None or not channel.enabled or channel.provider != provider:
            self._count(provider, "unknown_channel")
            return _NOT_FOUND
        secrets = channel.secrets
        if secrets is None:
            self._count(provider, "unavailable")
            return _UNAVAILABLE
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))  # ASGI: lower-case
        declared = headers.get("content-length")
        if declared is not None and _too_long(declared, self._max_body):
            self._count(provider, "too_large")
            return _TOO_LARGE
        wait = self._guard.take(channel_id)
        if wait:
            self._count(provider, "rate_limited")
            retry = (b"retry-after", str(max(1, math.ceil(wait))).encode())
            return _error(429, "too many requests", retry)
        body = await self._read_body(receive)
        if body is None:
            self._count(provider, "too_large")
            return _TOO_LARGE
        raw_query: bytes = scope["query_string"]
        query = (
            dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True))
            if raw_query
            else {}
        )
        try:
            channel.adapter.verify_webhook(headers, body, query, secrets)
        except WebhookAuthError as exc:
            logger.warning("webhook refused: %s", exc.reason, extra={"channel_id": channel_id})
            self._count(provider, "unauthorized")
            return _error(401, exc.reason)
        content_type = headers.get("content-type", "")
        reason = malformed(provider, body, content_type)
        if reason is not None:
            self._count(provider, "malformed")
            return _error(400, reason)
        event_id, payload = encode_event(
            tenant_id=channel.tenant_id,
            provider=provider,
            channel_id=channel_id,
            body=body,
            content_type=content_type or None,
            headers={name: headers[name] for name in KEPT_HEADERS if name in headers},
            query={k: v for k, v in query.items() if k.lower() not in SECRET_QUERY},
        )
        nats_headers = {
            h.NATS_MSG_ID: event_id,
            h.ZF_TYPE: EVENT_TYPE,
            h.ZF_TENANT: channel.tenant_id,
            h.CONTENT_TYPE: h.JSON,
        }
        try:
            if self._tracing:
                with telemetry.tracer.start_as_current_span(
                    "webhook publish", kind=SpanKind.PRODUCER
                ):
                    await self._publish(channel.subject, payload, telemetry.inject(nats_headers))
            else:
                await self._publish(channel.subject, payload, nats_headers)
        except (NatsError, TimeoutError):
            logger.warning(
                "webhook not stored: jetstream publish failed",
                extra={"channel_id": channel_id},
                exc_info=True,
            )
            self._count(provider, "not_stored")
            return _NOT_STORED
        self._count(provider, "stored")
        return 200, b'{"id":"' + event_id.encode() + b'"}', [_JSON]

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """A JetStream publish, acknowledged: what ``js.publish`` does, with the ack read by
        orjson instead of the stdlib decoder and a dataclass (3 µs of a ~60 µs request)."""
        reply = await self._nc.request(subject, payload, timeout=self._timeout, headers=headers)
        ack = orjson.loads(reply.data)
        if "error" in ack:
            raise APIError.from_error(ack["error"])

    def handshake(self, channel_id: str, scope: Scope) -> Answer:
        """Meta's subscription check: echo ``hub.challenge`` if ``hub.verify_token`` matches."""
        channel = self._cache.get(channel_id)
        if channel is None or not channel.enabled or channel.provider != "meta":
            return _NOT_FOUND
        if channel.secrets is None:
            return _UNAVAILABLE
        raw_query: bytes = scope["query_string"]
        query = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True))
        try:
            challenge = verify_handshake(query, channel.secrets.verify_token)
        except WebhookAuthError as exc:
            logger.warning("handshake refused: %s", exc.reason, extra={"channel_id": channel_id})
            return _error(403, exc.reason)
        return 200, challenge.encode(), [_TEXT]
