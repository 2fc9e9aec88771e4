"""Infrastructure errors are told apart from the message's own failures, and database error
texts (``DETAIL:  Key (…)=(…)``, failing rows, quoted values) never reach logs or dead letters."""

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from unittest.mock import MagicMock

import asyncpg
import nats.errors
import nats.js.errors
import pytest

from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.runtime import dlq
from zapflow.runtime import logging as zf_logging
from zapflow.runtime.consumer import HandlerTimeoutError
from zapflow.runtime.faults import describe, is_infrastructure, scrub
from zapflow.testing.types import DatabaseFactory

PHONE = "+5511987654321"
BODY = "meu endereço é Rua Secreta 42"


def _raised_from(cause: BaseException) -> TransientError:
    try:
        raise cause
    except BaseException as exc:
        try:
            raise TransientError("publish failed", code="publish") from exc
        except TransientError as wrapped:
            return wrapped


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(),
        TimeoutError(),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.SerializationError("could not serialize access"),
        asyncpg.InterfaceError("connection is closed"),
        nats.errors.TimeoutError(),
        nats.errors.NoRespondersError(),
        nats.errors.ConnectionClosedError(),
        nats.js.errors.ServiceUnavailableError(),
        _raised_from(nats.errors.TimeoutError()),
    ],
    ids=type,
)
def test_outages_are_infrastructure_errors(exc: BaseException) -> None:
    assert is_infrastructure(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
        TransientError("unknown channel, try later"),
        PermanentError("invalid recipient"),
        HandlerTimeoutError("handler ran longer than 24s"),
        ValueError("bad"),
        KeyError("x"),
    ],
    ids=type,
)
def test_the_message_s_own_failures_are_not(exc: BaseException) -> None:
    assert not is_infrastructure(exc)


def test_scrub_removes_values_and_keeps_identifiers() -> None:
    text = (
        'duplicate key value violates unique constraint "contacts_phone_key"\n'
        f"DETAIL:  Key (tenant_id, phone)=(acme, {PHONE}) already exists."
    )
    assert scrub(text) == 'duplicate key value violates unique constraint "contacts_phone_key"'
    assert PHONE not in scrub(f'invalid input syntax for type uuid: "{PHONE}"')
    assert PHONE not in scrub(f"wrapped: Key (phone)=({PHONE}) already exists")
    assert PHONE not in scrub(f"Failing row contains (1, {PHONE}, {BODY}).")


# -- against a real PostgreSQL error ---------------------------------------------------------


@pytest.fixture
async def pool(fresh_db: DatabaseFactory) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(fresh_db("faults"), min_size=1, max_size=1)
    assert created is not None
    await created.execute(
        "CREATE TABLE contacts (tenant_id text, phone text, body text CHECK (length(body) < 5),"
        " UNIQUE (tenant_id, phone))"
    )
    await created.execute("INSERT INTO contacts VALUES ('acme', $1, 'ok')", PHONE)
    yield created
    await created.close()


async def _errors(pool: asyncpg.Pool) -> list[asyncpg.PostgresError]:
    found: list[asyncpg.PostgresError] = []
    for sql, args in (
        ("INSERT INTO contacts VALUES ('acme', $1, 'ok')", (PHONE,)),  # DETAIL: Key (…)=(…)
        ("INSERT INTO contacts VALUES ('acme', '1', $1)", (BODY,)),  # DETAIL: Failing row …
        (f"SELECT '{PHONE}'::uuid", ()),  # invalid input syntax for type uuid: "…"
    ):
        with pytest.raises(asyncpg.PostgresError) as caught:
            await pool.execute(sql, *args)
        found.append(caught.value)
    return found


def _leaks(text: str) -> bool:
    return PHONE in text or BODY in text or "DETAIL" in text


async def test_dead_letter_records_carry_no_values_from_database_errors(
    pool: asyncpg.Pool,
) -> None:
    msg = MagicMock()
    msg.headers = {"Zf-Tenant": "acme"}
    msg.data = b"{}"
    msg.subject = "zf.test"
    msg.metadata.stream, msg.metadata.consumer = "ZF_TEST", "ingest-test"
    msg.metadata.sequence.stream, msg.metadata.num_delivered = 7, 1
    for error in await _errors(pool):
        assert _leaks(str(error))  # what asyncpg says by itself
        record = dlq.record_for(msg, error, "ingest")
        assert not _leaks(record.error_text), record.error_text
        assert error.sqlstate in record.error_text
        assert not _leaks(describe(_raised_from(error)))


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    as_json, as_text = io.StringIO(), io.StringIO()
    json_handler, text_handler = logging.StreamHandler(as_json), logging.StreamHandler(as_text)
    json_handler.setFormatter(zf_logging.JsonFormatter("ingest"))
    text_handler.setFormatter(zf_logging.TextFormatter())
    log = logging.getLogger("zapflow.test.faults")
    log.handlers[:] = [json_handler, text_handler]
    log.propagate = False
    yield as_json, as_text
    log.handlers.clear()


async def test_logs_of_database_errors_carry_no_values(
    pool: asyncpg.Pool, captured: tuple[io.StringIO, io.StringIO]
) -> None:
    log = logging.getLogger("zapflow.test.faults")
    for error in await _errors(pool):
        try:
            raise RuntimeError("handler failed") from error
        except RuntimeError:
            log.exception("handler failed", extra={"error": str(error)})
        log.warning("store failed: %s", error)
    as_json, as_text = captured
    lines = [json.loads(line) for line in as_json.getvalue().splitlines()]
    assert len(lines) == 6
    assert any("UniqueViolationError" in line.get("exc", "") for line in lines)
    assert not _leaks(as_json.getvalue()), as_json.getvalue()
    assert not _leaks(as_text.getvalue()), as_text.getvalue()


async def test_a_pool_bounds_statements_on_the_server_and_waits_for_a_connection(
    fresh_db: DatabaseFactory,
) -> None:
    from zapflow.runtime.db import Timeouts, create_pool

    limits = Timeouts(statement_s=0.2, acquire_s=0.3)
    bounded = await create_pool(fresh_db("timeouts"), "public", max_size=1, timeouts=limits)
    try:
        with pytest.raises(asyncpg.QueryCanceledError):
            await bounded.execute("SELECT pg_sleep(5)")
        async with bounded.acquire():  # the only connection is taken: a second waiter gives up
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(bounded.fetchval("SELECT 1"), 60)
    finally:
        await bounded.close()
