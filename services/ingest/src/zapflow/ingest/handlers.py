"""The use cases of ingest's consumers: stored rows and canonical events out.

* ingest-raw: a raw provider webhook in (``handle_raw``);
* ingest-outbound: a send request, veto or outcome in (``handle_send``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Sequence

from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.subjects import subject_for
from zapflow.ingest.outbound import SendEvent
from zapflow.ingest.ports import BodyReader, IngestStore, OutboundStore, Publish
from zapflow.providers import ParsedWebhook, get_adapter
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.scrub import scrub_webhook
from zapflow.runtime.bodies import BodyNotFoundError

logger = logging.getLogger(__name__)


class UnparseableWebhook(PermanentError):
    """The raw body is not the provider's webhook (or the provider is unknown)."""


async def handle_raw(
    evt: WebhookReceived,
    *,
    store: IngestStore,
    publish: Publish,
    media_queued: Callable[[], None] = lambda: None,
    bodies: BodyReader | None = None,
) -> None:
    """Parse, store in one transaction, then publish; the caller acks when this returns.

    A body stored apart (``body_ref``, too large to travel inline) is read from ``bodies``.
    Provider secrets the body carries (Evolution's ``apikey``) are scrubbed before it is parsed
    and stored. A webhook seen before (redelivered after a crash between commit and ack)
    republishes the events its first run wrote to the outbox, under the same ids, so JetStream
    drops them.
    """
    body, parsed = await _parse(evt, store, bodies)
    ingested = await store.ingest(evt, body, parsed)
    if ingested is None:
        events = await store.outbox(evt.id)
        logger.info("webhook seen before, republishing", extra={"event_id": str(evt.id)})
    else:
        events = ingested.events
        if ingested.media_jobs:
            media_queued()
    await _publish_all(events, publish)


async def handle_send(evt: SendEvent, *, store: OutboundStore, publish: Publish) -> None:
    """Record the outbound message or move its status, then publish; the caller acks when this
    returns. A send event seen before republishes its first run's outbox (same ids)."""
    events = await store.record(evt)
    if events is None:
        events = await store.outbox(evt.id)
        logger.info("send event seen before, republishing", extra={"event_id": str(evt.id)})
    await _publish_all(events, publish)


async def _publish_all(events: Sequence[Event], publish: Publish) -> None:
    try:
        await asyncio.gather(*(publish(subject_for(e), e) for e in events))
    except Exception as exc:  # any NATS failure: the outbox keeps the events for the retry
        raise TransientError(f"publish failed: {type(exc).__name__}", code="publish") from exc


async def _body(evt: WebhookReceived, store: IngestStore, bodies: BodyReader | None) -> bytes:
    if evt.body_ref is not None:
        if bodies is None:
            raise TransientError("no body store to read body_ref from", code="body_store")
        try:
            return await bodies.get(evt.body_ref)
        except BodyNotFoundError as exc:
            await store.record_failure(evt, b"", "stored body not found")
            raise UnparseableWebhook("stored body not found", code="body_missing") from exc
        except Exception as exc:  # NATS unreachable or slow: the body is still there
            raise TransientError(f"body read failed: {type(exc).__name__}", code="body") from exc
    try:
        return base64.b64decode(evt.body_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        await store.record_failure(evt, evt.body_b64.encode(), "body_b64 is not base64")
        raise UnparseableWebhook("body_b64 is not base64", code="bad_body") from exc


async def _parse(
    evt: WebhookReceived, store: IngestStore, bodies: BodyReader | None
) -> tuple[bytes, ParsedWebhook]:
    body = scrub_webhook(await _body(evt, store, bodies), evt.content_type or "")
    try:
        adapter = get_adapter(evt.provider)
    except KeyError as exc:
        reason = f"no adapter for provider {evt.provider!r}"
        await store.record_failure(evt, body, reason)
        raise UnparseableWebhook(reason, code="unknown_provider") from exc
    try:
        return body, adapter.parse_webhook(body, evt.content_type or "")
    except WebhookPayloadError as exc:
        await store.record_failure(evt, body, exc.reason)
        raise UnparseableWebhook(exc.reason, code="unparseable") from exc
