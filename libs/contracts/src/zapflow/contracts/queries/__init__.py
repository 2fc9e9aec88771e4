"""Request-reply contracts (core NATS, not JetStream): queries one service answers for another.

One module per answering service and major version (``gateway_v1``, ``ingest_v1``,
``compliance_v1``). Requests and replies are plain contracts, not events: nothing is stored, and a
lost reply is simply retried by the caller. Every request carries ``tenant_id`` and the answer
never crosses tenants.

Each query is declared once as a :class:`QuerySpec`: its subject, its request and reply models,
the service that answers it and the services allowed to ask. A caller publishes on
``<subject>.<caller>`` (:meth:`QuerySpec.subject_for`) and the answering service listens on
``<subject>.*``; the NATS server lets each service publish only with its own name as the last
token (``zapflow.contracts.access``), so the responder knows who asks and serves only the callers
the declaration names.

Every reply has one envelope. Success: the reply model's JSON. Failure: the header
:data:`ERROR_HEADER` holds a :data:`QueryErrorCode` and the body a :class:`QueryFailure`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

from zapflow.contracts.envelope import Contract
from zapflow.contracts.subjects import token
from zapflow.contracts.types import SERVICES, ServiceName

ERROR_HEADER: Final = "Zf-Error"
"""Set on a failed reply; its value is the :data:`QueryErrorCode`."""

QueryErrorCode = Literal["bad_request", "forbidden", "unavailable", "internal"]
"""``bad_request``: the request did not validate (the caller's fault, do not retry);
``forbidden``: the caller may not ask this; ``unavailable``: the answering service could not
answer now (retry); ``internal``: it failed unexpectedly (logged there)."""


class QueryFailure(Contract):
    """The body of a failed reply. ``message`` never holds input values (no personal data)."""

    code: QueryErrorCode
    message: str


Req = TypeVar("Req", bound=Contract)
Rep = TypeVar("Rep", bound=Contract)


@dataclass(frozen=True, slots=True)
class QuerySpec(Generic[Req, Rep]):
    """One request-reply subject: who answers it, who may ask, and its models."""

    subject: str
    request: type[Req]
    reply: type[Rep]
    server: ServiceName
    callers: frozenset[ServiceName]
    description: str

    def __post_init__(self) -> None:
        unknown = {self.server, *self.callers} - set(SERVICES)
        if unknown:
            raise ValueError(f"{self.subject}: unknown services {sorted(unknown)}")
        if self.server in self.callers:
            raise ValueError(f"{self.subject}: a service does not query itself")

    @property
    def queue_group(self) -> str:
        """Replicas of the answering service share requests in this queue group."""
        return self.server

    @property
    def listen(self) -> str:
        """What the answering service subscribes to: ``<subject>.*``."""
        return f"{self.subject}.*"

    def subject_for(self, caller: str) -> str:
        """Where ``caller`` sends its requests: ``<subject>.<caller>``."""
        return f"{self.subject}.{token(caller)}"

    def caller_of(self, subject: str) -> str | None:
        """The caller named by a request's ``subject``, or None if it is not this query's."""
        prefix, _, caller = subject.rpartition(".")
        return caller if prefix == self.subject and caller else None
