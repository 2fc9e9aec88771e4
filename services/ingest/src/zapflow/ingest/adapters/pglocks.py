"""A transaction that first takes advisory locks on provider message ids, in one round trip.

A receipt (or edit, or revoke) and the message it refers to may be processed at the same time
by two workers or replicas. Without serialization, a receipt committed while its message's
insert is in flight would be kept as "pending" after the message's own look for pending changes
ran, and never be applied. Both sides therefore lock ``(channel, provider message id)`` for the
whole transaction; the outbound path takes the same key when it links a provider id to its
message, and one key per outbound message id besides. The locks are taken by the statement
that opens the transaction (``BEGIN; SELECT pg_advisory_xact_lock(…)``, one simple-query
round trip), so every later statement's snapshot is taken after they are held; keys are
sorted, and no row lock is held before them, so they cannot deadlock with each other.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable
from uuid import UUID

from zapflow.ingest.adapters.pgtypes import Conn


def lock_key(channel_id: str, provider_message_id: str) -> int:
    """A signed 64-bit advisory lock key (collisions only serialize a little more)."""
    return _key(f"{channel_id}\x00{provider_message_id}")


def message_lock_key(message_id: UUID) -> int:
    """The lock of one outbound message (every send event about it takes it)."""
    return _key(f"\x01message\x00{message_id}")  # \x01 never starts a channel id


def _key(text: str) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@contextlib.asynccontextmanager
async def locked_transaction(conn: Conn, keys: Iterable[int]) -> AsyncIterator[None]:
    """``BEGIN`` + the advisory locks, then ``COMMIT``, or ``ROLLBACK`` on any exception."""
    locks = ", ".join(f"pg_advisory_xact_lock({int(k)})" for k in sorted(set(keys)))
    await conn.execute(f"BEGIN; SELECT {locks}" if locks else "BEGIN")
    try:
        yield
    except BaseException:
        if not conn.is_closed():
            with contextlib.suppress(Exception):  # a broken connection is discarded by the pool
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
