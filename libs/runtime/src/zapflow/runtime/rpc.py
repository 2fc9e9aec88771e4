"""Request-reply between services: the one responder and the one way to ask.

A query is declared once in ``zapflow.contracts.queries`` (:class:`QuerySpec`: subject, models,
the answering service, the services allowed to ask). :func:`serve` answers it;
:func:`ask` asks it. Every reply uses the same envelope (success: the reply model; failure: the
``Zf-Error`` header with a :class:`QueryFailure`).

**The responder knows its caller.** Callers send on ``<subject>.<caller>``, and the NATS server
lets each service publish only with its own name there (``zapflow.contracts.access``): the last
token is the authenticated caller. The responder answers ``forbidden`` to a caller the
declaration does not name (the server refuses such a request already; this is the second lock).

Requests are answered in tasks of their own, at most ``concurrency`` at a time, so one slow
answer does not hold up the others. The answer coroutine receives the validated request and the
caller's name and maps its outcome by raising:

- :class:`QueryRefused` → its code (``bad_request``, ``forbidden``);
- a contract ``ValidationError`` of the request → ``bad_request``, described without input values;
- :class:`TransientError` or an infrastructure error (database or NATS unreachable) →
  ``unavailable``: the caller may retry;
- anything else → ``internal``, logged once here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Final, Generic, TypeVar

import asyncpg
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import ValidationError

from zapflow.contracts.envelope import Contract
from zapflow.contracts.errors import TransientError
from zapflow.contracts.queries import ERROR_HEADER, QueryErrorCode, QueryFailure, QuerySpec
from zapflow.runtime import metrics

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=Contract)
Rep = TypeVar("Rep", bound=Contract)

DEFAULT_TIMEOUT_S: Final = 5.0
_DRAIN_S: Final = 5.0
_INFRASTRUCTURE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.QueryCanceledError,
    nats.errors.Error,
)


class QueryRefused(Exception):
    """Raised by an answer to refuse a request with ``code`` and a message free of input."""

    def __init__(self, code: QueryErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: QueryErrorCode = code
        self.message = message


class QueryFailed(Exception):
    """A query that came back failed (``code``, ``message``); see :class:`QueryUnavailable`."""

    def __init__(self, spec: QuerySpec[Any, Any], code: QueryErrorCode, message: str) -> None:
        super().__init__(f"{spec.subject}: {code}: {message}")
        self.subject = spec.subject
        self.code: QueryErrorCode = code
        self.message = message


class QueryUnavailable(TransientError):
    """No answer in time, no responder, or the answering service said ``unavailable``."""

    def __init__(self, spec: QuerySpec[Any, Any], reason: str) -> None:
        super().__init__(f"{spec.subject}: {reason}", code="query_unavailable")
        self.subject = spec.subject


Answer = Callable[[Req, str], Awaitable[Rep]]


def describe(exc: ValidationError) -> str:
    """Validation problems without the input values (they may hold phone numbers)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )[:500]


def _failure(code: QueryErrorCode, message: str) -> tuple[bytes, dict[str, str]]:
    body = QueryFailure(code=code, message=message).model_dump_json().encode()
    return body, {ERROR_HEADER: code}


class Responder(Generic[Req, Rep]):
    """Answers one :class:`QuerySpec` in its queue group; see the module docstring."""

    def __init__(self, spec: QuerySpec[Req, Rep], answer: Answer[Req, Rep], concurrency: int):
        self.spec = spec
        self._answer = answer
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._nc: NATS | None = None

    async def start(self, nc: NATS, resources: AsyncExitStack) -> None:
        self._nc = nc
        sub = await nc.subscribe(self.spec.listen, queue=self.spec.queue_group, cb=self._dispatch)
        resources.push_async_callback(self._drain)
        resources.push_async_callback(sub.unsubscribe)

    async def _dispatch(self, msg: Msg) -> None:
        if not msg.reply:
            return
        task = asyncio.create_task(self._respond(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, msg: Msg) -> None:
        async with self._slots:
            body, headers = await self.reply_to(msg.subject, msg.data)
        assert self._nc is not None
        assert msg.reply
        try:  # not msg.respond(): it would echo the request's headers
            await self._nc.publish(msg.reply, body, headers=headers or None)
        except nats.errors.Error:
            logger.warning("query reply not sent", extra={"subject": self.spec.subject})

    async def reply_to(self, subject: str, data: bytes) -> tuple[bytes, dict[str, str]]:
        """The reply body and headers for one request (exposed for tests)."""
        spec = self.spec
        caller = spec.caller_of(subject)
        outcome = "ok"
        try:
            if caller is None or caller not in spec.callers:
                outcome = "forbidden"
                logger.warning("query refused: caller not allowed", extra={"caller": caller})
                return _failure("forbidden", "caller may not ask this query")
            try:
                request = spec.request.model_validate_json(data)
            except ValidationError as exc:
                outcome = "bad_request"
                return _failure("bad_request", describe(exc))
            try:
                reply = await self._answer(request, caller)
            except QueryRefused as exc:
                outcome = exc.code
                return _failure(exc.code, exc.message)
            except (TransientError, *_INFRASTRUCTURE) as exc:
                outcome = "unavailable"
                logger.warning(
                    "query unavailable: %s", type(exc).__name__, extra={"subject": spec.subject}
                )
                return _failure("unavailable", "cannot answer now, retry")
            except Exception:
                outcome = "internal"
                logger.exception("query failed", extra={"subject": spec.subject})
                return _failure("internal", "query failed")
            return reply.model_dump_json().encode(), {}
        finally:
            metrics.QUERIES_SERVED.labels(spec.subject, outcome).inc()

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=_DRAIN_S)


async def serve(
    nc: NATS,
    spec: QuerySpec[Req, Rep],
    answer: Answer[Req, Rep],
    resources: AsyncExitStack,
    *,
    concurrency: int = 32,
) -> Responder[Req, Rep]:
    """Answer ``spec`` until ``resources`` closes (then the requests in hand finish)."""
    responder = Responder(spec, answer, concurrency)
    await responder.start(nc, resources)
    return responder


async def ask(
    nc: NATS,
    spec: QuerySpec[Req, Rep],
    request: Req,
    *,
    caller: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Rep:
    """``spec``'s reply to ``request``, asked as ``caller``.

    Raises :class:`QueryUnavailable` (a ``TransientError``: retry later) when nobody answers in
    time or the answering service says ``unavailable``, and :class:`QueryFailed` for the other
    failures (``bad_request``, ``forbidden``, ``internal``).
    """
    try:
        msg = await nc.request(
            spec.subject_for(caller), request.model_dump_json().encode(), timeout=timeout_s
        )
    except nats.errors.NoRespondersError:
        raise QueryUnavailable(spec, "no responders") from None
    except (nats.errors.TimeoutError, TimeoutError):
        raise QueryUnavailable(spec, "timed out") from None
    code = (msg.headers or {}).get(ERROR_HEADER)
    if code is not None:
        failure = QueryFailure.model_validate_json(msg.data)
        if failure.code == "unavailable":
            raise QueryUnavailable(spec, failure.message)
        raise QueryFailed(spec, failure.code, failure.message)
    return spec.reply.model_validate_json(msg.data)
