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

Bounded: one webhook may carry thousands of items, and every advisory lock takes a slot in
PostgreSQL's shared lock table (``max_locks_per_transaction`` x connections, 64 x 100 by
default), which one transaction could exhaust for the whole server. So the per-id locks sit under
a channel lock (a two-level hierarchy): a transaction with at most :data:`MAX_ITEM_LOCKS` ids
takes the channel's lock *shared* and its ids' locks exclusive, as before; a larger one takes the
channel's lock *exclusive* and no per-id lock, which excludes every transaction on that channel
(they all hold its lock shared) and so serializes the same pairs. Every transaction takes the
channel lock first, then its ids in sorted order, so the ordering argument above still holds.
At most ``MAX_ITEM_LOCKS + 1`` advisory locks per transaction, whatever the webhook.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable
from typing import Final
from uuid import UUID

from zapflow.ingest.adapters.pgtypes import Conn

MAX_ITEM_LOCKS: Final = 32
"""Above this many distinct ids a transaction locks its whole channel instead."""


def channel_lock_key(channel_id: str) -> int:
    """The lock above every ``lock_key(channel_id, …)`` (see the module docstring)."""
    return _key(f"\x02channel\x00{channel_id}")  # \x02 never starts a channel id


def lock_key(channel_id: str, provider_message_id: str) -> int:
    """A signed 64-bit advisory lock key (collisions only serialize a little more)."""
    return _key(f"{channel_id}\x00{provider_message_id}")


def message_lock_key(message_id: UUID) -> int:
    """The lock of one outbound message (every send event about it takes it)."""
    return _key(f"\x01message\x00{message_id}")  # \x01 never starts a channel id


def _key(text: str) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def lock_statement(channel_id: str, keys: Iterable[int]) -> str:
    """The statement opening a transaction on ``channel_id`` that locks ``keys``."""
    unique = sorted(set(keys))
    channel = channel_lock_key(channel_id)
    if len(unique) > MAX_ITEM_LOCKS:
        return f"BEGIN; SELECT pg_advisory_xact_lock({channel})"
    locks = ", ".join(f"pg_advisory_xact_lock({int(k)})" for k in unique)
    shared = f"pg_advisory_xact_lock_shared({channel})"
    return f"BEGIN; SELECT {shared}, {locks}" if locks else f"BEGIN; SELECT {shared}"


@contextlib.asynccontextmanager
async def locked_transaction(
    conn: Conn, channel_id: str, keys: Iterable[int]
) -> AsyncIterator[None]:
    """``BEGIN`` + the advisory locks, then ``COMMIT``, or ``ROLLBACK`` on any exception."""
    await conn.execute(lock_statement(channel_id, keys))
    try:
        yield
    except BaseException:
        if not conn.is_closed():
            with contextlib.suppress(Exception):  # a broken connection is discarded by the pool
                await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
