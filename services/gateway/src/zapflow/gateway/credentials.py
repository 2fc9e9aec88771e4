"""Responder for ``zf.gateway.channel_credentials.v1`` (core NATS request-reply, queue group
``gateway``): a channel's outbound credentials, decrypted, for ingest (media downloads) and the
sender. The answer never crosses tenants: a channel of another tenant is ``found: false``.
A request that is not a ``ChannelCredentialsRequest`` is answered ``found: false`` too; a
database failure is not answered at all, so the caller's request times out and it retries.
"""

from __future__ import annotations

import logging
from typing import Final

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)
from zapflow.gateway import channels
from zapflow.gateway.crypto import SecretBox
from zapflow.gateway.errors import SecretsError

logger = logging.getLogger(__name__)

QUEUE_GROUP: Final = "gateway"
_NOT_FOUND: Final = ChannelCredentialsReply(found=False).model_dump_json().encode()


async def answer(pool: asyncpg.Pool[asyncpg.Record], box: SecretBox, data: bytes) -> bytes | None:
    """The reply to one request's payload; None means "do not answer" (a transient failure)."""
    try:
        request = ChannelCredentialsRequest.model_validate_json(data)
    except ValidationError:
        logger.warning("malformed channel credentials request")
        return _NOT_FOUND
    try:
        reply = await channels.credentials(pool, box, request.tenant_id, request.channel_id)
    except SecretsError:
        logger.error("channel secrets do not open", extra={"channel_id": request.channel_id})
        return None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        logger.warning("channel credentials lookup failed", exc_info=True)
        return None
    return reply.model_dump_json().encode()


async def serve(nc: NATS, pool: asyncpg.Pool[asyncpg.Record], box: SecretBox) -> Subscription:
    """Subscribe the responder; unsubscribe the returned subscription to stop."""

    async def handle(msg: Msg) -> None:
        if not msg.reply:
            return
        reply = await answer(pool, box, msg.data)
        if reply is not None:
            await msg.respond(reply)

    return await nc.subscribe(CHANNEL_CREDENTIALS, queue=QUEUE_GROUP, cb=handle)
