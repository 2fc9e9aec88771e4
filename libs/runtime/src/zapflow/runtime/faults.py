"""Which failures belong to the infrastructure, and how an error is told without personal data.

**Infrastructure errors are waited out.** A message that failed because PostgreSQL or NATS was
unreachable is not at fault: the consumer keeps it (``in_progress``), retries it in place with a
capped backoff and spends none of its deliveries, so an outage of any length dead-letters
nothing. :func:`is_infrastructure` decides, for the exception or anything in its ``__cause__``
chain (a ``TransientError`` raised ``from`` a NATS timeout counts):

=====================  ===================================================================
PostgreSQL             connection errors (SQLSTATE class 08), cannot connect now / admin or
                       crash shutdown (57P01-57P03), too many connections and other class 53
                       resource errors, serialization failures and deadlocks (class 40), a
                       read-only transaction (a fail-over in progress), asyncpg's "connection
                       is closed" interface errors
network, timeouts      ``OSError`` (refused, reset, unreachable, DNS) and every ``TimeoutError``
                       (pool acquire, command and connect timeouts, NATS request timeouts)
NATS                   connection closed / reconnecting / draining / stale, no servers,
                       no responders, flush timeout, outbound buffer full; JetStream 503
                       (``ServiceUnavailableError``) and "no response from stream"
=====================  ===================================================================

Not infrastructure: ``statement_timeout`` cancellations (``QueryCanceledError``, SQLSTATE 57014)
— a statement that is always too slow for one input must end in the dead-letter queue, not hold
its consumer forever — and everything a handler raises on purpose (``PermanentError``) or by a bug.

**Error texts are scrubbed.** PostgreSQL puts row values in its messages: ``DETAIL:  Key
(phone)=(+5511…) already exists``, ``Failing row contains (…)``, ``invalid input syntax for type
uuid: "…"``. :func:`scrub` removes them from any text, and :func:`describe` gives an exception's
class and scrubbed message; dead-letter records and every log line (``zapflow.runtime.logging``)
go through them.
"""

from __future__ import annotations

import re
from typing import Final

import asyncpg
import nats.errors
import nats.js.errors

_PG_WAIT: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
    asyncpg.ReadOnlySQLTransactionError,
)
_NATS_WAIT: Final = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.FlushTimeoutError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
)


def is_infrastructure(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) means "PostgreSQL or NATS is not
    reachable right now"; see the module docstring for the list."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _is_infrastructure(current):
            return True
        current = current.__cause__
    return False


def _is_infrastructure(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.QueryCanceledError):
        return False  # statement_timeout: counted like any other failure
    if isinstance(exc, (*_PG_WAIT, *_NATS_WAIT, OSError)):  # OSError: every TimeoutError too
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc) or "closing" in str(exc)
    return isinstance(exc, nats.js.errors.APIError) and exc.code == 503


# -- scrubbing -------------------------------------------------------------------------------

_DETAIL: Final = re.compile(r"\s*\b(DETAIL|HINT):.*", re.S)
_DETAIL_LINE: Final = re.compile(r"^\s*(DETAIL|HINT):.*$", re.M)
_KEY_VALUES: Final = re.compile(r"(Key \([^)]*\))=\((?:[^()]|\([^()]*\))*\)")
_FAILING_ROW: Final = re.compile(r"(Failing row contains )\(.*\)")
_AFTER_COLON: Final = re.compile(r"(:\s*)\"(?:[^\"\\]|\\.)*\"")
REDACTED: Final = "<redacted>"


def scrub(text: str) -> str:
    """``text`` without the values PostgreSQL quotes in its errors (see the module docstring).

    Identifiers (constraint, table, column and type names) are kept; from a ``DETAIL:`` or
    ``HINT:`` on everything is dropped, key values, failing rows and ``: "literals"`` replaced.
    """
    if not text:
        return text
    return _values(_DETAIL.sub("", text))


def _values(text: str) -> str:
    text = _KEY_VALUES.sub(rf"\1=({REDACTED})", text)
    text = _FAILING_ROW.sub(rf"\1({REDACTED})", text)
    return _AFTER_COLON.sub(rf'\1"{REDACTED}"', text)


def describe(exc: BaseException, limit: int = 500) -> str:
    """The exception's message, scrubbed and cut to ``limit`` characters (for records and logs).

    A PostgreSQL error is told by its primary message only (never its detail, hint or query),
    with its SQLSTATE.
    """
    if isinstance(exc, asyncpg.PostgresError):
        primary = str(exc.args[0]) if exc.args else ""
        text = f"{scrub(primary)} (SQLSTATE {exc.sqlstate})"
    else:
        text = scrub(str(exc))
    return text[:limit]


def scrub_traceback(text: str, exc: BaseException | None) -> str:
    """A formatted traceback of ``exc`` with every chained exception's message told by
    :func:`describe`, and any other ``DETAIL``/``HINT`` line or quoted value removed."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        told = str(current)
        if told:
            text = text.replace(told, describe(current, limit=2000))
        pending += [current.__cause__, current.__context__]
    return _values(_DETAIL_LINE.sub("", text))
