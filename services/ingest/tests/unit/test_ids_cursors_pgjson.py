"""Deterministic ids, opaque cursors and PostgreSQL-safe JSON."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from zapflow.contracts.model import Media
from zapflow.ingest import cursors, ids
from zapflow.ingest.adapters import pgjson
from zapflow.ingest.adapters.pglocks import lock_key, message_lock_key


def test_ids_are_deterministic_and_distinct_per_key() -> None:
    raw = uuid4()
    assert ids.event_id(raw, "message/0") == ids.event_id(raw, "message/0")
    assert ids.event_id(raw, "message/0") != ids.event_id(raw, "message/1")
    assert ids.event_id(raw, "message/0") != ids.event_id(uuid4(), "message/0")
    assert ids.message_id("ch-1", "wamid.A") == ids.message_id("ch-1", "wamid.A")
    assert ids.message_id("ch-1", "wamid.A") != ids.message_id("ch-2", "wamid.A")


def test_lock_keys_are_stable_64_bit_and_apart_per_kind() -> None:
    message = uuid4()
    assert message_lock_key(message) == message_lock_key(message)
    assert message_lock_key(message) != message_lock_key(uuid4())
    assert message_lock_key(message) != lock_key("message", str(message))
    assert lock_key("ch-1", "wamid.A") != lock_key("ch-2", "wamid.A")
    for key in (message_lock_key(message), lock_key("ch-1", "wamid.A")):
        assert -(2**63) <= key < 2**63


def test_cursor_round_trip_keeps_microseconds_and_zone() -> None:
    at, row_id = datetime(2025, 11, 20, 14, 0, 0, 123456, tzinfo=UTC), uuid4()
    token = cursors.encode(at, row_id)
    assert "=" not in token
    assert cursors.decode(token) == (at, row_id)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        base64.urlsafe_b64encode(b"[1,2,3]").decode(),
        base64.urlsafe_b64encode(b'["2025-11-20T14:00:00", "x"]').decode(),
        base64.urlsafe_b64encode(
            b'["2025-11-20T14:00:00", "00000000-0000-0000-0000-000000000000"]'
        ).decode(),
    ],
)
def test_foreign_cursors_are_refused(token: str) -> None:
    with pytest.raises(cursors.BadCursor):
        cursors.decode(token)


def test_nul_characters_are_dropped_everywhere() -> None:
    assert pgjson.text("a\x00b") == "ab"
    assert pgjson.dumps({"k\x00": ["v\x00", {"x": "\x00"}]}) == '{"k":["v",{"x":""}]}'
    assert pgjson.dumps(None) is None
    assert pgjson.loads(pgjson.dumps(Media(caption="oi\x00")))["caption"] == "oi"


def test_a_webhook_takes_a_bounded_number_of_advisory_locks() -> None:
    from zapflow.ingest.adapters.pglocks import MAX_ITEM_LOCKS, channel_lock_key, lock_statement

    few = [lock_key("ch", f"wamid.{i}") for i in range(3)]
    statement = lock_statement("ch", [*few, *few])
    assert statement.count("pg_advisory_xact_lock(") == 3  # unique ids, exclusive
    assert f"pg_advisory_xact_lock_shared({channel_lock_key('ch')})" in statement
    many = [lock_key("ch", f"wamid.{i}") for i in range(5000)]
    statement = lock_statement("ch", many)
    assert statement == f"BEGIN; SELECT pg_advisory_xact_lock({channel_lock_key('ch')})"
    assert lock_statement("ch", many[: MAX_ITEM_LOCKS + 1]).count("lock") == 1
    assert (
        lock_statement("ch", [])
        == f"BEGIN; SELECT pg_advisory_xact_lock_shared({channel_lock_key('ch')})"
    )
