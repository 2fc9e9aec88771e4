"""Provider statuses naming in-doubt sends, read back from ZF_MESSAGES on a real nats-server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest
from nats.aio.client import Client

from zapflow.contracts.envelope import utcnow
from zapflow.contracts.messages.v1 import MessageStatusChanged
from zapflow.contracts.model import DeliveryStatus
from zapflow.contracts.streams import ZF_MESSAGES
from zapflow.contracts.subjects import subject_for
from zapflow.runtime.broker import Publisher, declare
from zapflow.sender.adapters.statuses import StatusScans
from zapflow.testing import unique

pytestmark = pytest.mark.integration


def status(
    tenant: str,
    channel: str,
    message_id: UUID,
    provider_id: str | None,
    *,
    echo: bool = True,
    at: datetime | None = None,
) -> MessageStatusChanged:
    return MessageStatusChanged(
        tenant_id=tenant,
        message_id=message_id,
        provider_message_id=provider_id,
        conversation_id=uuid4(),
        channel_id=channel,
        status=DeliveryStatus.SENT if provider_id else DeliveryStatus.FAILED,
        at=at or utcnow(),
        client_message_id=str(message_id) if echo else None,
    )


async def test_a_status_published_before_the_watch_and_one_after_are_both_found(
    bus: Client,
) -> None:
    js = bus.jetstream()
    await declare(js, (ZF_MESSAGES,))
    publish = Publisher(js)
    tenant, channel = unique("t"), unique("c")
    early, late, never, other = uuid4(), uuid4(), uuid4(), uuid4()
    call_at = utcnow()
    for event in (
        status(tenant, channel, early, "wamid.EARLY"),  # arrived before the doubt showed
        status(tenant, channel, never, "wamid.NOECHO", echo=False),  # our SendSucceeded's
        status(unique("t"), channel, other, "wamid.OTHER"),  # another tenant
    ):
        await publish(subject_for(event), event)
    scans = StatusScans(js, slack_s=5)
    try:
        async with (
            scans.watch(tenant, channel, early, since=call_at) as first,
            scans.watch(tenant, channel, never, since=call_at) as silent,
        ):
            assert await first.named(5) == "wamid.EARLY"
            assert not silent.heard_since(call_at + timedelta(seconds=10))
            await publish(*_with_subject(status(tenant, channel, late, "wamid.LATE")))
            async with scans.watch(tenant, channel, late, since=call_at) as second:
                # added after the scan passed the first event: the scan starts over for it
                assert await second.named(5) == "wamid.LATE"
            assert await silent.named(0.5) is None
            assert silent.heard_since(call_at)  # the channel's webhooks do reach us
            async with scans.watch(tenant, channel, other, since=call_at) as stranger:
                assert await stranger.named(0.5) is None  # another tenant's message
            later = status(tenant, channel, uuid4(), "wamid.X", at=utcnow() + timedelta(hours=1))
            await publish(subject_for(later), later)
            async with asyncio.timeout(5):
                while True:  # a status reported an hour from now: heard from then on
                    if silent.heard_since(utcnow() + timedelta(minutes=30)):
                        break
                    await asyncio.sleep(0.05)
    finally:
        await scans.close()


def _with_subject(event: MessageStatusChanged) -> tuple[str, MessageStatusChanged]:
    return subject_for(event), event
