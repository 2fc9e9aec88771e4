"""Retrying a whole transaction when concurrent writers collide.

Unique-key races on contacts and conversations (another worker or replica created the row
first), deadlocks and serialization failures roll the transaction back; running it again from
the start sees the other writer's rows. After ``attempts`` runs the input is handed back to the
broker as a :class:`TransientError` (redelivered later); a lost database is transient at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar
from uuid import UUID

import asyncpg

from zapflow.contracts.errors import TransientError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Race(Exception):
    """Another transaction created the same row first: retry the whole transaction."""


RETRYABLE: Final = (
    asyncpg.UniqueViolationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    Race,
)


async def retrying(run: Callable[[], Awaitable[T]], *, attempts: int, event_id: UUID) -> T:
    """``run()`` until it does not collide, at most ``attempts`` times."""
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except RETRYABLE as exc:
            if attempt == attempts:
                raise TransientError(
                    "concurrent writes kept conflicting", code="db_conflict"
                ) from exc
            logger.info("write conflict, retrying", extra={"event_id": str(event_id)})
        except (OSError, asyncpg.PostgresConnectionError) as exc:
            raise TransientError("database unavailable", code="db_unavailable") from exc
    raise AssertionError("unreachable")
