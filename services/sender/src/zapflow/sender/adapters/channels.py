"""Channel settings replayed from ``ZF_CHANNELS`` into memory, in every replica.

Every replica needs every channel (partitions move between replicas), so each one reads the whole
stream with its own ordered consumer from the first message — the stream keeps the last event per
channel and kind, forever — and then follows it live. Events are applied in stream order, so a
``ChannelDisabled`` after a ``ChannelRegistered`` disables, and a later ``ChannelUpdated``
(with ``enabled``) enables again.

A lookup of an unknown channel first waits until the replay reached the stream's last sequence
*at the time of the lookup*: an approved send can only exist after its channel was registered, so
a channel still unknown then does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from zapflow.contracts import headers as h
from zapflow.contracts.channels.v1 import (
    ChannelDisabled,
    ChannelRegistered,
    ChannelSettings,
    ChannelUpdated,
)
from zapflow.contracts.errors import UnknownEventType
from zapflow.contracts.registry import parse_event
from zapflow.contracts.streams import ZF_CHANNELS

logger = logging.getLogger(__name__)

CATCH_UP_TIMEOUT_S: Final = 5.0

Key = tuple[str, str]


class ChannelReplay:
    """The ``ChannelDirectory`` port; ``start()`` subscribes, ``stop()`` unsubscribes."""

    def __init__(self, js: JetStreamContext, *, catch_up_timeout_s: float = CATCH_UP_TIMEOUT_S):
        self._js = js
        self._timeout = catch_up_timeout_s
        self._channels: dict[Key, ChannelSettings] = {}
        self._seen = 0
        self._progress = asyncio.Event()
        self._sub: object | None = None

    async def start(self) -> None:
        self._sub = await self._js.subscribe(
            ZF_CHANNELS.subjects[0],
            stream=ZF_CHANNELS.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on_message,
        )

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        unsubscribe = getattr(sub, "unsubscribe", None)
        if unsubscribe is not None:
            await unsubscribe()

    def get(self, tenant_id: str, channel_id: str) -> ChannelSettings | None:
        """What the replay knows now, without waiting."""
        return self._channels.get((tenant_id, channel_id))

    async def settings(self, tenant_id: str, channel_id: str) -> ChannelSettings | None:
        found = self._channels.get((tenant_id, channel_id))
        if found is None:
            await self.catch_up()
            found = self._channels.get((tenant_id, channel_id))
        return found

    async def catch_up(self) -> bool:
        """Wait until everything stored now was applied; False on timeout."""
        target = (await self._js.stream_info(ZF_CHANNELS.name)).state.last_seq
        deadline = time.monotonic() + self._timeout
        while self._seen < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.warning("channel replay behind", extra={"seen": self._seen})
                return False
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                continue
        return True

    async def _on_message(self, msg: Msg) -> None:
        self._seen = max(self._seen, msg.metadata.sequence.stream)
        self._progress.set()
        type_name = (msg.headers or {}).get(h.ZF_TYPE, "")
        try:
            event = parse_event(type_name, msg.data)
        except (UnknownEventType, ValidationError):
            logger.warning("unreadable channel event skipped", extra={"subject": msg.subject})
            return
        self.apply(event)

    def apply(self, event: object) -> None:
        if isinstance(event, ChannelRegistered | ChannelUpdated):
            self._channels[(event.tenant_id, event.channel.channel_id)] = event.channel
        elif isinstance(event, ChannelDisabled):
            key = (event.tenant_id, event.channel_id)
            current = self._channels.get(key)
            if current is not None:
                self._channels[key] = current.model_copy(update={"enabled": False})
