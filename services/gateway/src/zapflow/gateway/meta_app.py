"""Meta's app-level webhook URL: ``POST /webhooks/meta`` and its ``GET`` handshake.

Meta sends the webhooks of every number of an app to one callback URL. This endpoint routes
each change of a body to the channel registered with its ``phone_number_id`` (the channel's
``provider_account``), so a batch about two numbers lands on two channels. In order:

====  ====================================================================================
429   the client address has used up its budget of failed requests
413   over ``webhook_max_body_bytes``
400   not a ``whatsapp_business_account`` envelope
404   no change names a registered, enabled number (``{"error": "unknown phone_number_id"}``):
      nothing is stored and Meta retries (for up to 7 days), so registering the number's
      channel in that time recovers the deliveries
200   no change names a number at all (``account_update`` and other app fields; ingest would
      ignore them): nothing to store, ``{"ids": []}``
503   a routed channel's secrets cannot be opened
401   ``X-Hub-Signature-256`` does not verify with the app secret of *every* routed channel:
      nothing is stored (one app signs one batch; a change for a channel of another app is
      forged or misconfigured)
429   a routed channel's flood limit is exhausted (taken only now, after authentication)
503   JetStream did not acknowledge every part: the parts that were stored are stored again by
      Meta's retry under the same event ids (derived from channel and part), so once
200   every part stored: ``{"ids": [...], "unrouted": [phone_number_id, ...]}``. Changes for
      numbers no channel has are not stored; they are listed, logged (ids only) and counted
      (``outcome="unrouted"``): a 2xx keeps Meta from re-sending the other numbers' changes
      for days because of one unregistered number
====  ====================================================================================

Each channel's part is stored as that channel's raw webhook: the original bytes when the whole
body is that channel's, else the envelope rebuilt with only its changes
(:func:`zapflow.providers.meta.routing.envelope_of`). The ``GET`` handshake answers the challenge
when ``hub.verify_token`` is the verify token of any enabled Meta channel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import orjson
from starlette.types import Receive, Scope

from zapflow.gateway.cache import WebhookChannel
from zapflow.gateway.envelope import inspect
from zapflow.gateway.inbound_event import derived_event_id
from zapflow.gateway.webhook_http import (
    JSON,
    NO_METHOD,
    NOT_STORED,
    TEXT,
    TOO_LARGE,
    UNAVAILABLE,
    Answer,
    NotStored,
    error,
    request_headers,
    request_query,
    too_long,
)
from zapflow.providers.errors import WebhookAuthError
from zapflow.providers.meta import verify_handshake
from zapflow.providers.meta.routing import Part, changes_by_number, envelope_of

if TYPE_CHECKING:
    from zapflow.gateway.webhooks import WebhookEndpoints

logger = logging.getLogger(__name__)

PROVIDER = "meta"


class MetaAppEndpoint:
    """``/webhooks/meta`` over the per-channel endpoints' cache, guards and store."""

    def __init__(self, endpoints: WebhookEndpoints) -> None:
        self._ep = endpoints

    async def __call__(self, method: str, scope: Scope, receive: Receive) -> Answer:
        if method == "POST":
            return await self.receive(scope, receive)
        if method == "GET":
            return self.handshake(scope)
        return NO_METHOD

    async def receive(self, scope: Scope, receive: Receive) -> Answer:
        ep = self._ep
        headers = request_headers(scope)
        source = ep.source(scope, headers)
        limited = ep.source_limited(source, PROVIDER)
        if limited is not None:
            return limited
        if too_long(headers.get("content-length"), ep.max_body):
            ep.count(PROVIDER, "too_large")
            return TOO_LARGE
        body = await ep.read_body(receive)
        if body is None:
            ep.count(PROVIDER, "too_large")
            return TOO_LARGE
        reason, data = inspect(PROVIDER, body, headers.get("content-type", ""))
        if reason is not None:
            return ep.refused(source, PROVIDER, "malformed", error(400, reason))
        routed, unrouted, unnumbered = self._route(changes_by_number(data))
        if not routed:
            if unrouted:
                logger.warning("meta webhook for unknown numbers", extra={"accounts": unrouted[:8]})
                answer = error(404, "unknown phone_number_id")
                return ep.refused(source, PROVIDER, "unrouted", answer)
            return ep.refused(source, PROVIDER, "ignored", (200, b'{"ids":[]}', [JSON]))
        query = request_query(scope)
        refused = self._verify(routed, headers, body, query, source)
        if refused is not None:
            return refused
        for channel, _ in routed.values():
            limited = ep.flood_limited(channel.channel_id, PROVIDER)
            if limited is not None:
                return limited
        whole = len(routed) == 1 and not unrouted and not unnumbered
        try:
            ids = await asyncio.gather(
                *(
                    self._store(channel, body if whole else _part_body(data, part), headers, query)
                    for channel, part in routed.values()
                )
            )
        except NotStored:
            ep.count(PROVIDER, "not_stored")
            return NOT_STORED
        for _ in ids:
            ep.count(PROVIDER, "stored")
        if unrouted:
            logger.warning("meta changes for unknown numbers", extra={"accounts": unrouted[:8]})
            for _ in unrouted:
                ep.count(PROVIDER, "unrouted")
        return 200, orjson.dumps({"ids": ids, "unrouted": unrouted}), [JSON]

    def _route(
        self, groups: dict[str | None, Part]
    ) -> tuple[dict[str, tuple[WebhookChannel, Part]], list[str], int]:
        """(channel id -> (channel, its changes), unrouted numbers, changes naming none)."""
        routed: dict[str, tuple[WebhookChannel, Part]] = {}
        unrouted: list[str] = []
        unnumbered = 0
        for account, part in groups.items():
            if account is None:
                unnumbered += len(part)
                continue
            channel = self._ep.cache.route(PROVIDER, account)
            if channel is None:
                unrouted.append(account)
                continue
            routed.setdefault(channel.channel_id, (channel, []))[1].extend(part)
        return routed, unrouted, unnumbered

    def _verify(
        self,
        routed: dict[str, tuple[WebhookChannel, Part]],
        headers: dict[str, str],
        body: bytes,
        query: dict[str, str],
        source: str,
    ) -> Answer | None:
        """None when the signature verifies for every routed channel, else the answer."""
        verified: set[str] = set()
        for channel, _ in routed.values():
            secrets = channel.secrets
            if secrets is None:
                self._ep.count(PROVIDER, "unavailable")
                return UNAVAILABLE
            if secrets.app_secret is not None and secrets.app_secret in verified:
                continue
            try:
                channel.adapter.verify_webhook(headers, body, query, secrets)
            except WebhookAuthError as exc:
                logger.warning(
                    "meta webhook refused: %s", exc.reason, extra={"channel_id": channel.channel_id}
                )
                return self._ep.refused(source, PROVIDER, "unauthorized", error(401, exc.reason))
            if secrets.app_secret is not None:
                verified.add(secrets.app_secret)
        return None

    async def _store(
        self, channel: WebhookChannel, part: bytes, headers: dict[str, str], query: dict[str, str]
    ) -> str:
        event_id = derived_event_id(channel.channel_id, part)
        return await self._ep.store(channel, part, headers, query, event_id=event_id)

    def handshake(self, scope: Scope) -> Answer:
        ep = self._ep
        headers = request_headers(scope)
        source = ep.source(scope, headers)
        limited = ep.source_limited(source, PROVIDER)
        if limited is not None:
            return limited
        query = request_query(scope)
        for token in ep.cache.verify_tokens(PROVIDER):
            try:
                challenge = verify_handshake(query, token)
            except WebhookAuthError:
                continue
            return 200, challenge.encode(), [TEXT]
        logger.warning("app-level handshake refused")
        return ep.refused(source, PROVIDER, "unauthorized", error(403, "verify token mismatch"))


def _part_body(data: dict[str, object], part: Part) -> bytes:
    return orjson.dumps(envelope_of(data, part))
