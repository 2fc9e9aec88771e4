"""Compliance API: a send's decision, the tenant's rules, a contact's consent, opt-in and opt-out.

Reads and rule changes are compliance's request-reply queries
(``zapflow.contracts.queries.compliance_v1``, answered by compliance's queue group) for the
caller's tenant only. Opt-in and opt-out are ``ChangeConsent`` commands: written to the outbox
(202 once committed) and published to ``ZF_COMPLIANCE`` by the relay; compliance applies them
in order of the time they were given, so the consent query shows them moments later.

Outcomes: 400 for an invalid request (also when compliance refuses it), 404 for another tenant's
channel or a message compliance has not decided on, 503 (``Retry-After: 1``) when compliance does
not answer in time.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zapflow.contracts.compliance.v1 import ChangeConsent, ConsentState
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.envelope import Contract
from zapflow.contracts.queries import QuerySpec
from zapflow.contracts.queries import compliance_v1 as cq
from zapflow.contracts.types import ChannelId, PhoneE164
from zapflow.gateway import scopes
from zapflow.gateway.auth import Principal, requires
from zapflow.gateway.command_log import CommandLog
from zapflow.gateway.schemas import ErrorOut
from zapflow.providers.phones import normalize_phone
from zapflow.runtime import rpc
from zapflow.runtime.rpc import QueryFailed, QueryUnavailable

CALLER: Final = "gateway"
"""The gateway asks its queries under its own name (its NATS identity allows no other)."""
QUERY_TIMEOUT_S: Final = 5.0
"""How long a route waits for compliance's answer before answering 503."""
READ = requires(scopes.COMPLIANCE_READ)
WRITE = requires(scopes.COMPLIANCE_WRITE)
CONSENT = requires(scopes.CONSENT_WRITE)
DECISION = requires(scopes.MESSAGES_READ)
"""A send's decision is the message's fate, read with the messages it concerns."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid request"},
    401: {"model": ErrorOut, "description": "Missing, invalid or revoked API key"},
    403: {"model": ErrorOut, "description": "The API key lacks the route's scope"},
    404: {"model": ErrorOut, "description": "Not found for this tenant"},
}
_ASKS: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "Compliance did not answer; retry"}
}
_WRITES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "Body over the API's size limit"}
}

router = APIRouter(tags=["compliance"], responses=_ERRORS)

Reader = Annotated[Principal, Depends(READ)]
Writer = Annotated[Principal, Depends(WRITE)]
ConsentWriter = Annotated[Principal, Depends(CONSENT)]
MessageReader = Annotated[Principal, Depends(DECISION)]
R = TypeVar("R", bound=BaseModel)


class ConsentChangeIn(BaseModel):
    """A contact's consent, for one channel or (``channel_id`` omitted) all of the tenant's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    phone: PhoneE164 = Field(description="E.164, e.g. `+5511999990001`.")
    channel_id: ChannelId | None = Field(default=None, description="Omit for every channel.")
    contact_id: UUID | None = None
    source: Literal["api", "import"] = Field(
        default="api", description="`import` for consent collected elsewhere (a list)."
    )
    note: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="Why, for the audit trail (no personal data)."
    )


class ConsentAccepted(BaseModel):
    """The change was stored and will reach compliance."""

    command_id: UUID = Field(description="Id of the `ChangeConsent` command.")
    status: Literal["accepted"] = "accepted"
    state: ConsentState
    channel_id: str | None = None


def _unavailable() -> HTTPException:
    return HTTPException(503, "compliance unavailable", headers={"Retry-After": "1"})


async def _ask(
    request: Request, spec: QuerySpec[Any, Any], query: Contract, reply_model: type[R]
) -> R:
    assert spec.reply is reply_model, f"{spec.subject} answers {spec.reply.__name__}"
    nc = request.app.state.service.nc
    try:
        reply = await rpc.ask(nc, spec, query, caller=CALLER, timeout_s=QUERY_TIMEOUT_S)
    except QueryUnavailable:
        raise _unavailable() from None
    except QueryFailed as exc:
        if exc.code == "bad_request":
            raise HTTPException(400, exc.message) from None
        raise _unavailable() from None
    assert isinstance(reply, reply_model)
    return reply


def _log(request: Request) -> CommandLog:
    log: CommandLog = request.app.state.gateway.commands
    return log


async def _require_channel(request: Request, tenant_id: str, channel_id: str) -> None:
    if await _log(request).channel_enabled(tenant_id, channel_id) is None:
        raise HTTPException(404, "unknown channel")


@router.get(
    "/v1/messages/{message_id}/decision",
    summary="Compliance's decision on a message: approved, vetoed or deferred, and why",
    responses=_ASKS,
)
async def get_decision(request: Request, message_id: UUID, who: MessageReader) -> cq.DecisionReply:
    query = cq.DecisionQuery(tenant_id=who.tenant_id, message_id=message_id)
    reply = await _ask(request, cq.DECISION, query, cq.DecisionReply)
    if not reply.found:
        raise HTTPException(404, "no decision for this message (yet)")
    return reply


@router.get(
    "/v1/compliance/rules",
    summary="The tenant's compliance rules (defaults if never set)",
    responses=_ASKS,
)
async def get_rules(request: Request, who: Reader) -> cq.RulesReply:
    query = cq.RulesQuery(tenant_id=who.tenant_id)
    return await _ask(request, cq.RULES, query, cq.RulesReply)


@router.put(
    "/v1/compliance/rules",
    summary="Replace the tenant's compliance rules (omitted fields take their defaults)",
    responses={**_ASKS, **_WRITES},
)
async def put_rules(request: Request, rules: cq.TenantRules, who: Writer) -> cq.RulesReply:
    command = cq.PutRules(tenant_id=who.tenant_id, rules=rules, requested_by=who.actor)
    return await _ask(request, cq.PUT_RULES, command, cq.RulesReply)


@router.get(
    "/v1/contacts/consent", summary="A contact's consent in force on a channel", responses=_ASKS
)
async def get_consent(
    request: Request,
    who: Reader,
    channel_id: Annotated[ChannelId, Query(description="The channel to ask about.")],
    address: Annotated[
        str,
        Query(
            min_length=1,
            max_length=128,
            description="The contact's phone (any form; E.164 preferred), or the provider "
            "address it wrote from (wa_id, JID, LID).",
        ),
    ],
) -> cq.ConsentReply:
    await _require_channel(request, who.tenant_id, channel_id)
    query = cq.ConsentQuery(
        tenant_id=who.tenant_id,
        address=normalize_phone(address) or address.strip(),
        channel_id=channel_id,
    )
    return await _ask(request, cq.CONSENT, query, cq.ConsentReply)


async def _change_consent(
    request: Request, who: Principal, body: ConsentChangeIn, state: ConsentState
) -> ConsentAccepted:
    if body.channel_id is not None:
        await _require_channel(request, who.tenant_id, body.channel_id)
    command = ChangeConsent(
        tenant_id=who.tenant_id,
        phone=body.phone,
        contact_id=body.contact_id,
        channel_id=body.channel_id,
        state=state,
        source=ConsentSource(body.source),
        requested_by=who.actor,
        note=body.note,
    )
    await _log(request).enqueue(command)
    return ConsentAccepted(command_id=command.id, state=state, channel_id=body.channel_id)


@router.post(
    "/v1/consent/opt-out",
    status_code=202,
    summary="Record that a contact opted out (sends to it are vetoed)",
    responses=_WRITES,
)
async def opt_out(request: Request, body: ConsentChangeIn, who: ConsentWriter) -> ConsentAccepted:
    return await _change_consent(request, who, body, ConsentState.OPTED_OUT)


@router.post(
    "/v1/consent/opt-in",
    status_code=202,
    summary="Record that a contact opted in (again)",
    responses=_WRITES,
)
async def opt_in(request: Request, body: ConsentChangeIn, who: ConsentWriter) -> ConsentAccepted:
    return await _change_consent(request, who, body, ConsentState.OPTED_IN)
