"""Send use cases: an API request becomes one durable ``SendRequested``, once per Idempotency-Key.

1. If the tenant already used the key, the stored send answers: the same request gets the same
   message id again; another request under that key is refused (409, :class:`ConflictError`).
2. Otherwise the channel must be the tenant's (404) and enabled (409).
3. A new message id, the ``SendRequest`` and its event are built; the key and the event's outbox
   row are written in one transaction. Whoever commits the key first wins: a concurrent request
   with the same key ends up in step 1's answer.

The caller answers 202 only after that commit: from then on the relay publishes the event
(``Nats-Msg-Id`` = event id) until JetStream acknowledged it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import orjson

from zapflow.contracts.common import SendOrigin
from zapflow.contracts.queries.ingest_v1 import ConversationView
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested
from zapflow.gateway.auth import Principal
from zapflow.gateway.command_log import CommandLog, SendRecord
from zapflow.gateway.errors import ConflictError, NotFoundError
from zapflow.gateway.send_schemas import (
    ConversationMessageIn,
    MessageIn,
    SendAccepted,
    to_contract,
)

KEY_REUSED = "Idempotency-Key already used with a different request"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes: the channel, the recipient, and the conversation when known."""

    channel_id: str
    to: Recipient
    conversation_id: UUID | None = None


def fingerprint(body: ConversationMessageIn | MessageIn, conversation_id: UUID | None) -> bytes:
    """SHA-256 of the request's meaning: the route's target and the body with its defaults, so
    key order, whitespace and spelled-out defaults do not make two requests differ."""
    canonical: dict[str, Any] = {
        "conversation_id": None if conversation_id is None else str(conversation_id),
        "body": body.model_dump(mode="json"),
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).digest()


def _answer(record: SendRecord, fingerprint_: bytes) -> SendAccepted:
    if record.fingerprint != fingerprint_:
        raise ConflictError(KEY_REUSED)
    return record.accepted()


async def replay(
    log: CommandLog, tenant_id: str, key: str | None, fingerprint_: bytes
) -> SendAccepted | None:
    """The stored answer if the tenant already used ``key``; None if it is new (or absent)."""
    if key is None:
        return None
    found = await log.find_send(tenant_id, key)
    return None if found is None else _answer(found, fingerprint_)


def conversation_target(conversation: ConversationView) -> Target:
    """The conversation's channel and contact; 409 if the contact has no address to send to."""
    contact = conversation.contact
    if contact.phone is None and contact.wa_id is None:
        raise ConflictError("the conversation's contact has no address")
    return Target(
        channel_id=conversation.channel_id,
        to=Recipient(phone=contact.phone, wa_id=contact.wa_id, contact_id=contact.id),
        conversation_id=conversation.id,
    )


def phone_target(body: MessageIn) -> Target:
    return Target(channel_id=body.channel_id, to=Recipient(phone=body.to))


def send_requested(
    who: Principal, body: ConversationMessageIn | MessageIn, target: Target, key: str | None
) -> SendRequested:
    """The event for a new message; without a key, the message id is the key."""
    message_id = uuid4()
    request = SendRequest(
        message_id=message_id,
        channel_id=target.channel_id,
        to=target.to,
        conversation_id=target.conversation_id,
        content=to_contract(body.content),
        reply_to=body.reply_to,
        origin=SendOrigin.API,
        idempotency_key=key or str(message_id),
        priority=body.priority,
        requested_by=who.actor,
        not_after=body.not_after,
    )
    return SendRequested(tenant_id=who.tenant_id, request=request)


async def require_channel(log: CommandLog, tenant_id: str, channel_id: str) -> None:
    """404 unless the channel is the tenant's; 409 when it is disabled."""
    enabled = await log.channel_enabled(tenant_id, channel_id)
    if enabled is None:
        raise NotFoundError("unknown channel")
    if not enabled:
        raise ConflictError("channel disabled")


async def submit(
    log: CommandLog,
    who: Principal,
    body: ConversationMessageIn | MessageIn,
    target: Target,
    *,
    key: str | None,
    fingerprint_: bytes,
) -> SendAccepted:
    """Steps 2 and 3: check the channel, then take the key and enqueue the event."""
    await require_channel(log, who.tenant_id, target.channel_id)
    event = send_requested(who, body, target, key)
    request = event.request
    record = SendRecord(
        tenant_id=who.tenant_id,
        idempotency_key=request.idempotency_key,
        fingerprint=fingerprint_,
        message_id=request.message_id,
        event_id=event.id,
        channel_id=request.channel_id,
        conversation_id=request.conversation_id,
    )
    stored = await log.record_send(record, event)
    return _answer(stored, fingerprint_)
