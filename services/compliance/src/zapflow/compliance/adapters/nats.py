"""NATS edges: publishing with errors mapped to ``TransientError``, and the query responders."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel, ValidationError

from zapflow.compliance.ports import Publisher
from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import TransientError
from zapflow.contracts.queries.compliance_v1 import INTERNAL_ERROR, QUEUE_GROUP, QueryError

logger = logging.getLogger(__name__)

Q = TypeVar("Q", bound=BaseModel)


class RetryingPublisher:
    """Wraps the runtime's JetStream publisher; a failed publish is worth a later retry."""

    def __init__(self, publish: Publisher) -> None:
        self._publish = publish

    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> object:
        try:
            return await self._publish(subject, event, headers)
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransientError(f"publish failed: {type(exc).__name__}", code="publish") from exc


@dataclass(frozen=True, slots=True)
class Route(Generic[Q]):
    """One query subject: how to parse the request and how to answer it."""

    model: type[Q]
    answer: Callable[[Q], Awaitable[BaseModel]]


def _describe(exc: ValidationError) -> str:
    """The validation problems without the input values (they may hold phone numbers)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


async def serve_queries(nc: NATS, routes: Mapping[str, Route[Any]]) -> list[Subscription]:
    """Answer each subject in ``routes`` in the ``compliance`` queue group."""

    def responder(route: Route[Any]) -> Callable[[Msg], Awaitable[None]]:
        async def respond(msg: Msg) -> None:
            reply: BaseModel
            try:
                reply = await route.answer(route.model.model_validate_json(msg.data))
            except ValidationError as exc:
                reply = QueryError(error=_describe(exc))
            except Exception:  # the caller gets an answer either way; the cause is logged here
                logger.exception("query failed", extra={"subject": msg.subject})
                reply = QueryError(error=INTERNAL_ERROR)
            if msg.reply:
                await msg.respond(reply.model_dump_json().encode())

        return respond

    return [
        await nc.subscribe(subject, queue=QUEUE_GROUP, cb=responder(route))
        for subject, route in routes.items()
    ]
