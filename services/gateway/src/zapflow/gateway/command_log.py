"""The port the send and consent routes write through, and its PostgreSQL adapter.

A command the API accepts (``SendRequested``, ``ChangeConsent``) is written to the outbox and
published by the relay (:mod:`zapflow.gateway.outbox`); a send also takes its idempotency key in
the same transaction. Routes reach the log as ``request.app.state.gateway.commands``; unit tests
give them an in-memory one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import asyncpg

from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import SendRequested
from zapflow.gateway import store
from zapflow.gateway.send_schemas import SendAccepted


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One API send, as its idempotency key remembers it."""

    tenant_id: str
    idempotency_key: str
    fingerprint: bytes
    """SHA-256 of the canonical request (see ``sends.fingerprint``)."""
    message_id: UUID
    event_id: UUID
    channel_id: str
    conversation_id: UUID | None

    def accepted(self) -> SendAccepted:
        """The answer to the request, identical every time the key is replayed."""
        return SendAccepted(
            message_id=self.message_id,
            channel_id=self.channel_id,
            conversation_id=self.conversation_id,
            idempotency_key=self.idempotency_key,
        )


class CommandLog(Protocol):
    async def channel_enabled(self, tenant_id: str, channel_id: str) -> bool | None:
        """Whether the tenant's channel is enabled; None if the tenant has no such channel."""
        ...

    async def find_send(self, tenant_id: str, key: str) -> SendRecord | None:
        """The send that took this idempotency key, if any."""
        ...

    async def record_send(self, record: SendRecord, event: SendRequested) -> SendRecord:
        """Take the key and enqueue ``event`` atomically; if the key was already taken, enqueue
        nothing and return the send that holds it."""
        ...

    async def enqueue(self, event: Event) -> None:
        """Enqueue a command that needs no idempotency record."""
        ...


def _record(row: asyncpg.Record) -> SendRecord:
    return SendRecord(
        tenant_id=row["tenant_id"],
        idempotency_key=row["idempotency_key"],
        fingerprint=bytes(row["fingerprint"]),
        message_id=row["message_id"],
        event_id=row["event_id"],
        channel_id=row["channel_id"],
        conversation_id=row["conversation_id"],
    )


class PgCommandLog:
    """:class:`CommandLog` over the gateway's schema (``send_requests`` and ``outbox``)."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    async def channel_enabled(self, tenant_id: str, channel_id: str) -> bool | None:
        return await store.channel_enabled(self._pool, tenant_id, channel_id)

    async def find_send(self, tenant_id: str, key: str) -> SendRecord | None:
        row = await store.send_request(self._pool, tenant_id, key)
        return None if row is None else _record(row)

    async def record_send(self, record: SendRecord, event: SendRequested) -> SendRecord:
        async with self._pool.acquire() as conn, conn.transaction():
            taken = await store.insert_send_request(
                conn,
                tenant_id=record.tenant_id,
                idempotency_key=record.idempotency_key,
                fingerprint=record.fingerprint,
                message_id=record.message_id,
                event_id=record.event_id,
                channel_id=record.channel_id,
                conversation_id=record.conversation_id,
            )
            if taken:
                await store.enqueue(conn, event)
                return record
            row = await store.send_request(conn, record.tenant_id, record.idempotency_key)
        assert row is not None, "the key's row exists: the insert conflicted with it"
        return _record(row)

    async def enqueue(self, event: Event) -> None:
        await store.enqueue(self._pool, event)
