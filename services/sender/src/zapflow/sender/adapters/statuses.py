"""Provider statuses that name in-doubt sends, read from ingest's ``MessageStatusChanged``.

The ``ProviderStatuses`` port. Ingest links a provider receipt that echoes our message id (Meta
``biz_opaque_callback_data``) to its outbound message and publishes ``MessageStatusChanged``
with ``client_message_id``; such an event proves the provider took the message.

Nothing is read while nothing is in doubt. While a tenant has in-doubt sends on this replica, one
ordered consumer (ephemeral, in memory) reads ``zf.messages.status_changed.v1.<tenant>`` on
``ZF_MESSAGES`` from a little (``slack_s``, for clock skew) before the earliest in-doubt call,
so a status that arrived before the doubt was noticed — usually a second after the call, while
the doubt shows only once the partition moved, seconds later — is found too. A watch whose call
lies before what the running scan already passed restarts it from there. The scan also keeps,
per channel, the latest provider time of any status naming a message of ours: evidence that the
channel's webhooks reach Zapflow (``StatusWatch.heard_since``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from zapflow.contracts import subjects
from zapflow.contracts.messages.v1 import MessageStatusChanged
from zapflow.contracts.streams import ZF_MESSAGES
from zapflow.sender.ports import StatusWatch

logger = logging.getLogger(__name__)

SLACK_S: Final = 30.0
"""Start reading this long before the call: sender, database and NATS clocks may differ."""
RETRY_S: Final = 1.0
_NAMED: Final = b'"client_message_id":"'


class StatusScans:
    """One scan per tenant with in-doubt sends on this replica."""

    def __init__(self, js: JetStreamContext, *, slack_s: float = SLACK_S) -> None:
        self._js = js
        self._slack = timedelta(seconds=slack_s)
        self._scans: dict[str, _Scan] = {}

    @contextlib.asynccontextmanager
    async def watch(
        self, tenant_id: str, channel_id: str, message_id: UUID, *, since: datetime
    ) -> AsyncIterator[StatusWatch]:
        scan = self._scans.get(tenant_id)
        if scan is None:
            scan = self._scans[tenant_id] = _Scan(self._js, tenant_id)
        watch = _Watch(scan, channel_id, message_id)
        scan.add(watch, since - self._slack)
        try:
            yield watch
        finally:
            scan.remove(watch)
            if scan.idle and self._scans.get(tenant_id) is scan:
                del self._scans[tenant_id]
                await scan.close()

    async def close(self) -> None:
        scans, self._scans = list(self._scans.values()), {}
        for scan in scans:
            await scan.close()


class _Watch:
    def __init__(self, scan: _Scan, channel_id: str, message_id: UUID) -> None:
        self.channel_id = channel_id
        self.message_id = message_id
        self._scan = scan
        self._found: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def found(self, provider_message_id: str) -> None:
        if not self._found.done():
            self._found.set_result(provider_message_id)

    async def named(self, timeout_s: float) -> str | None:
        try:
            return await asyncio.wait_for(asyncio.shield(self._found), timeout_s)
        except TimeoutError:
            return None

    def heard_since(self, at: datetime) -> bool:
        heard = self._scan.heard.get(self.channel_id)
        return heard is not None and heard >= at


class _Scan:
    """The status events of one tenant, from ``start`` on, matched against open watches."""

    def __init__(self, js: JetStreamContext, tenant_id: str) -> None:
        self._js = js
        self._subject = subjects.subject(subjects.MESSAGES_STATUS_CHANGED_V1, tenant_id)
        self._watches: dict[UUID, list[_Watch]] = defaultdict(list)
        self.heard: dict[str, datetime] = {}
        self._start: datetime | None = None  # of the running (or pending) subscription
        self._position: datetime | None = None  # stream time of the last event read
        self._sub: JetStreamContext.PushSubscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        return not self._watches

    def add(self, watch: _Watch, start: datetime) -> None:
        self._watches[watch.message_id].append(watch)
        passed = self._position is not None and self._position > start
        if self._start is None or self._start > start or passed:
            self._restart(start)

    def remove(self, watch: _Watch) -> None:
        watches = self._watches.get(watch.message_id, [])
        if watch in watches:
            watches.remove(watch)
        if not watches:
            self._watches.pop(watch.message_id, None)

    def _restart(self, start: datetime) -> None:
        self._start = start if self._start is None else min(self._start, start)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._subscribe(), name=f"statuses {self._subject}")

    async def _subscribe(self) -> None:
        await asyncio.sleep(0)  # watches added in the same moment share one restart
        while self._start is not None:
            start = self._start
            await self._unsubscribe()
            try:
                self._position = None
                self._sub = await self._js.subscribe(
                    self._subject,
                    stream=ZF_MESSAGES.name,
                    ordered_consumer=True,
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start
                    ),
                    cb=self._on_msg,
                )
            except Exception:  # NATS unavailable, the stream not declared yet: try again
                logger.warning("status scan not started, retrying", exc_info=True)
                await asyncio.sleep(RETRY_S)
                continue
            logger.info("reading provider statuses", extra={"subject": self._subject})
            if self._start is None or self._start >= start:
                return
            # a watch wanted an earlier start meanwhile: read again from there

    async def _on_msg(self, msg: Msg) -> None:
        self._position = msg.metadata.timestamp
        if _NAMED not in msg.data:
            return  # not a provider status naming one of our messages
        try:
            event = MessageStatusChanged.model_validate_json(msg.data)
        except ValidationError:
            return
        if event.client_message_id is None:
            return
        heard = self.heard.get(event.channel_id)
        if heard is None or event.at > heard:
            self.heard[event.channel_id] = event.at
        if event.provider_message_id and event.client_message_id == str(event.message_id):
            for watch in self._watches.get(event.message_id, ()):
                watch.found(event.provider_message_id)

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self) -> None:
        self._start = None
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._unsubscribe()
