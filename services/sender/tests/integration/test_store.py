"""``PgAttemptStore`` against PostgreSQL: batched first attempts and acceptances keep the
guarantees of one statement per write (a row begun once, ``accepted`` never overwritten)."""

from __future__ import annotations

import asyncio
from datetime import date
from importlib.resources import files
from uuid import uuid4

import pytest

from zapflow.runtime import db
from zapflow.sender.adapters.pg import PgAttemptStore
from zapflow.sender.domain import State
from zapflow.sender.ports import NewAttempt

pytestmark = pytest.mark.integration


def attempt() -> NewAttempt:
    return NewAttempt(uuid4(), "t", "c", "meta", date(2026, 1, 1))


async def test_concurrent_writes_are_batched_and_each_caller_gets_its_row(sender_db: str) -> None:
    await db.migrate(sender_db, "sender", files("zapflow.sender") / "migrations")
    pool = await db.create_pool(sender_db, "sender", min_size=2, max_size=2, session_state=False)
    try:
        store = PgAttemptStore(pool, max_in_flight=1)
        new = [attempt() for _ in range(50)]
        begun = await asyncio.gather(*(store.begin(a) for a in new))
        assert [r.message_id for r in begun if r] == [a.message_id for a in new]
        assert {(r.state, r.attempts) for r in begun if r} == {(State.SENDING, 1)}
        again = await asyncio.gather(store.begin(new[0]), store.begin(attempt()))
        assert again[0] is None  # already begun: never a second first attempt
        assert again[1] is not None

        ids = [a.message_id for a in new]
        accepted = await asyncio.gather(
            *(store.record_accepted(i, f"wamid.{n}") for n, i in enumerate(ids))
        )
        assert [(r.state, r.provider_message_id) for r in accepted] == [
            (State.ACCEPTED, f"wamid.{n}") for n in range(50)
        ]
        # a second answer for an accepted message does not overwrite the first
        late = await store.record_accepted(ids[0], "wamid.other")
        assert late.provider_message_id == "wamid.0"
        assert store._begins.batches < 50  # coalesced, not one statement each
        assert store._accepts.batches < 50
        # the pool has no reset query but still hands out clean connections
        assert await pool.fetchval("SHOW search_path") == "sender, public"
    finally:
        await pool.close()
