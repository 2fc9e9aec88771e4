"""The gateway's answer to ``CHANNEL_CREDENTIALS`` (``zapflow.runtime.rpc``): a channel's
outbound credentials, decrypted, for the services that call the provider on its behalf (ingest
downloading media, the sender). Only those may ask: the NATS server refuses anyone else's
request and the responder checks the caller again. The answer never crosses tenants: a channel of
another tenant is ``found: false``. Secrets that do not open (a wrong secrets key) or a database
that does not answer are ``unavailable``: the caller retries later.
"""

from __future__ import annotations

import logging

import asyncpg

from zapflow.contracts.errors import TransientError
from zapflow.contracts.queries.gateway_v1 import (
    CHANNEL_CREDENTIALS,
    ChannelCredentialsReply,
    ChannelCredentialsRequest,
)
from zapflow.gateway import channels
from zapflow.gateway.crypto import SecretBox
from zapflow.gateway.errors import SecretsError
from zapflow.runtime.service import Service

logger = logging.getLogger(__name__)


class CredentialsAnswer:
    """Answers one request from the channel registry."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], box: SecretBox) -> None:
        self._pool = pool
        self._box = box

    async def __call__(
        self, request: ChannelCredentialsRequest, caller: str
    ) -> ChannelCredentialsReply:
        try:
            return await channels.credentials(
                self._pool, self._box, request.tenant_id, request.channel_id
            )
        except SecretsError as exc:
            logger.error("channel secrets do not open", extra={"channel_id": request.channel_id})
            raise TransientError("channel secrets do not open", code="secrets") from exc


async def serve(svc: Service, pool: asyncpg.Pool[asyncpg.Record], box: SecretBox) -> None:
    """Answer ``CHANNEL_CREDENTIALS`` until the service stops."""
    await svc.serve(CHANNEL_CREDENTIALS, CredentialsAnswer(pool, box))
