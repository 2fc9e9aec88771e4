"""Send API: ``POST /v1/conversations/{id}/messages`` and ``POST /v1/messages``.

A send is accepted (202, ``{"message_id", "status": "queued", ...}``) once its ``SendRequested``
is committed to the gateway's outbox with its idempotency key (:mod:`zapflow.gateway.sends`);
compliance decides on it next (``GET /v1/messages/{id}/decision``), then the sender sends it.

* ``Idempotency-Key`` (optional, 1-200 visible ASCII characters, per tenant): the same key with
  the same request answers the same 202 again and sends nothing new; with another request, 409.
  Keys are kept ``idempotency_retention_days``.
* A conversation is looked up in ingest (404 if it is not the tenant's, 503 if ingest does not
  answer); a phone send names the channel, which must be the tenant's (404) and enabled (409).
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, Depends, Header, HTTPException, Request

from zapflow.contracts.queries import ingest_v1 as q
from zapflow.gateway import scopes, sends
from zapflow.gateway.auth import Principal, requires
from zapflow.gateway.command_log import CommandLog
from zapflow.gateway.read_api import ask_ingest
from zapflow.gateway.schemas import ErrorOut
from zapflow.gateway.send_schemas import ConversationMessageIn, MessageIn, SendAccepted

SEND_SCOPE: Final = scopes.MESSAGES_SEND
SEND = requires(SEND_SCOPE)
"""The dependency checking the caller may send."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid request, with one reason per problem"},
    401: {"model": ErrorOut, "description": "Missing, invalid or revoked API key"},
    403: {"model": ErrorOut, "description": "The API key lacks the route's scope"},
    404: {"model": ErrorOut, "description": "No such conversation or channel for this tenant"},
    409: {
        "model": ErrorOut,
        "description": "The channel is disabled, or the Idempotency-Key was already used for a "
        "different request",
    },
    413: {"model": ErrorOut, "description": "Body over the API's size limit"},
    503: {"model": ErrorOut, "description": "The conversation store did not answer; retry"},
}

router = APIRouter(tags=["messages"], responses=_ERRORS)

Sender = Annotated[Principal, Depends(SEND)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="Your unique id of this send (visible ASCII): a retry with the same key and "
        "body sends nothing new and answers the same message id.",
    ),
]


def _log(request: Request) -> CommandLog:
    log: CommandLog = request.app.state.gateway.commands
    return log


async def _conversation(request: Request, tenant_id: str, conversation_id: UUID) -> sends.Target:
    query = q.GetConversationRequest(tenant_id=tenant_id, conversation_id=conversation_id)
    reply = await ask_ingest(request, q.GET_CONVERSATION, query, q.ConversationReply)
    if reply.conversation is None:
        raise HTTPException(404, "conversation not found")
    return sends.conversation_target(reply.conversation)


@router.post(
    "/v1/conversations/{conversation_id}/messages",
    status_code=202,
    summary="Send a message to a conversation's contact, on its channel",
)
async def send_to_conversation(
    request: Request,
    conversation_id: UUID,
    body: ConversationMessageIn,
    who: Sender,
    key: IdempotencyKey = None,
) -> SendAccepted:
    log = _log(request)
    fingerprint = sends.fingerprint(body, conversation_id)
    replayed = await sends.replay(log, who.tenant_id, key, fingerprint)
    if replayed is not None:
        return replayed
    target = await _conversation(request, who.tenant_id, conversation_id)
    return await sends.submit(log, who, body, target, key=key, fingerprint_=fingerprint)


@router.post(
    "/v1/messages", status_code=202, summary="Send a message to a phone number on a channel"
)
async def send_to_phone(
    request: Request, body: MessageIn, who: Sender, key: IdempotencyKey = None
) -> SendAccepted:
    log = _log(request)
    fingerprint = sends.fingerprint(body, None)
    replayed = await sends.replay(log, who.tenant_id, key, fingerprint)
    if replayed is not None:
        return replayed
    target = sends.phone_target(body)
    return await sends.submit(log, who, body, target, key=key, fingerprint_=fingerprint)
