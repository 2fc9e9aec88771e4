"""Helpers for tests and benchmarks that drive the sender from outside, like the system does.

* :class:`CredentialsResponder` answers ``CHANNEL_CREDENTIALS`` like the gateway would;
* :func:`register_channels` publishes ``ChannelRegistered`` to ``ZF_CHANNELS``;
* :func:`approved_text` builds a ``SendApproved`` like compliance would;
* :func:`partition_of` says which of the ``SEND_PARTITIONS`` a channel's sends are stored in.

Nothing here is used by the service itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from nats.aio.client import Client
from nats.js import JetStreamContext

from zapflow.contracts.channels.v1 import ChannelRegistered, ChannelSettings, PaceSettings
from zapflow.contracts.common import SendOrigin, SendPriority
from zapflow.contracts.content import TextContent
from zapflow.contracts.errors import TransientError
from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.sending.v1 import Recipient, SendRequest
from zapflow.contracts.subjects import SEND_PARTITIONS, subject_for
from zapflow.runtime import rpc
from zapflow.runtime.broker import Publisher

META_API_VERSION = "v21.0"


@dataclass(frozen=True)
class SimChannel:
    """A Meta channel as the simulator serves it (``phone_number_id``) and Zapflow names it."""

    tenant_id: str
    channel_id: str
    phone_number_id: str
    access_token: str = "sim-token"

    def settings(self, provider_url: str, pace: PaceSettings) -> ChannelSettings:
        return ChannelSettings(
            channel_id=self.channel_id,
            provider="meta",
            provider_account=self.phone_number_id,
            base_url=f"{provider_url}/{META_API_VERSION}",
            credentials_ref=f"secret/{self.channel_id}",
            pace=pace,
        )


@dataclass
class CredentialsResponder:
    """Answers ``CHANNEL_CREDENTIALS`` for ``channels`` like the gateway (unless ``answer``), with
    the runtime's responder; ``nc`` must be allowed to serve it (the gateway's or the admin
    identity)."""

    nc: Client
    provider_url: str
    channels: list[SimChannel] = field(default_factory=list)
    answer: bool = True
    asked: int = 0
    _resources: AsyncExitStack = field(default_factory=AsyncExitStack)

    async def start(self) -> CredentialsResponder:
        await rpc.serve(self.nc, CHANNEL_CREDENTIALS, self._reply, self._resources)
        return self

    async def stop(self) -> None:
        await self._resources.aclose()

    async def _reply(self, ask: ChannelCredentialsRequest, _caller: str) -> ChannelCredentialsReply:
        self.asked += 1
        if not self.answer:
            raise TransientError("not answering", code="test")
        channel = next(
            (
                c
                for c in self.channels
                if (c.tenant_id, c.channel_id) == (ask.tenant_id, ask.channel_id)
            ),
            None,
        )
        return ChannelCredentialsReply(
            found=channel is not None,
            provider="meta",
            base_url=f"{self.provider_url}/{META_API_VERSION}",
            provider_account=channel.phone_number_id if channel else None,
            credentials={"access_token": channel.access_token} if channel else {},
        )


async def register_channels(
    js: JetStreamContext, channels: Iterable[SimChannel], provider_url: str, pace: PaceSettings
) -> None:
    publish = Publisher(js)
    for channel in channels:
        event = ChannelRegistered(
            tenant_id=channel.tenant_id, channel=channel.settings(provider_url, pace)
        )
        await publish(subject_for(event), event)


def approved_text(
    channel: SimChannel,
    to: str,
    text: str,
    *,
    message_id: UUID | None = None,
    priority: SendPriority = SendPriority.NORMAL,
) -> SendApproved:
    request = SendRequest(
        message_id=message_id or uuid4(),
        channel_id=channel.channel_id,
        to=Recipient(phone=to),
        content=TextContent(body=text),
        origin=SendOrigin.API,
        idempotency_key=text[:200],
        priority=priority,
    )
    return SendApproved(tenant_id=channel.tenant_id, request=request, decision_id=uuid4())


def partition_of(tenant_id: str, channel_id: str, partitions: int = SEND_PARTITIONS) -> int:
    """The partition nats-server's ``partition(n,1,2)`` transform puts a channel's sends in:
    FNV-1a (32 bit) of the tenant and channel tokens, concatenated, modulo ``partitions``."""
    digest = 0x811C9DC5
    for byte in (tenant_id + channel_id).encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return digest % partitions
