"""Publishing what the outbox holds; JetStream de-duplicates re-publishes by event id."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from zapflow.compliance.ports import Clock, Publisher, Store
from zapflow.contracts.envelope import Event
from zapflow.contracts.registry import parse_event

logger = logging.getLogger(__name__)


async def flush_outbox(
    store: Store,
    publish: Publisher,
    clock: Clock,
    *,
    caused_by: str | None = None,
    older_than_s: float = 0.0,
) -> int:
    """Publish unpublished events (of one cause, or every one older than ``older_than_s``)."""
    items = await store.unpublished(caused_by=caused_by, older_than_s=older_than_s)
    for item in items:
        await publish(item.subject, parse_event(item.type, item.payload))
    if items:
        await store.mark_published([item.event_id for item in items], clock.now())
    return len(items)


async def publish_enqueued(
    store: Store, publish: Publisher, clock: Clock, events: Sequence[tuple[str, Event]]
) -> None:
    """Publish ``events`` a handler has just committed to the outbox, then mark them published.

    The handler knows what it enqueued, so they are not read back, and the mark rides along with
    later database work (``Store.mark_published_soon``) instead of a round trip of its own. If a
    publish fails, what is left unmarked goes out with the redelivery (:func:`flush_outbox` of
    its cause) or the sweep.
    """
    for subject, event in events:
        await publish(subject, event)
    if events:
        await store.mark_published_soon([event.id for _, event in events], clock.now())
