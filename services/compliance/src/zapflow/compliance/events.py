"""The events compliance publishes, built from decisions and consent changes (pure).

Every id is derived from the input (``zapflow.compliance.ids``), so rebuilding an event after a
crash yields the very same event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from zapflow.compliance import ids
from zapflow.compliance.domain import Decision, Outcome
from zapflow.contracts.common import Actor, ActorKind, SendOrigin, SendPriority
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.consent.v1 import ConsentSource, ContactOptedIn, ContactOptedOut
from zapflow.contracts.content import TextContent
from zapflow.contracts.envelope import Event
from zapflow.contracts.messages.v1 import MessageReceived
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.sending.v1 import (
    DeferReason,
    Recipient,
    SendDeferred,
    SendRequest,
    SendRequested,
    SendVetoed,
    VetoReason,
)
from zapflow.contracts.subjects import send_approved, subject_for

COMPLIANCE_ACTOR = Actor(kind=ActorKind.SYSTEM, id="compliance")
"""``requested_by`` of the confirmations compliance asks to send."""


@dataclass(frozen=True, slots=True)
class Cause:
    """The input a decision answers: the request event's id and correlation."""

    event_id: UUID
    correlation_id: UUID | None


def decision_event(
    tenant_id: str,
    request: SendRequest,
    decision: Decision,
    *,
    seq: int,
    at: datetime,
    cause: Cause,
) -> tuple[str, Event]:
    """The subject and event announcing the ``seq``-th decision on ``request``."""
    common = {
        "id": ids.decision_event_id(request.message_id, seq),
        "occurred_at": at,
        "tenant_id": tenant_id,
        "correlation_id": cause.correlation_id,
        "causation_id": cause.event_id,
        "request": request,
        "decision_id": ids.decision_id(request.message_id, seq),
    }
    if decision.outcome is Outcome.APPROVED:
        return send_approved(tenant_id, request.channel_id), SendApproved.model_validate(common)
    if decision.outcome is Outcome.VETOED:
        assert isinstance(decision.reason, VetoReason)
        event: Event = SendVetoed.model_validate(
            {**common, "reason": decision.reason, "text": decision.text}
        )
    else:
        assert isinstance(decision.reason, DeferReason)
        event = SendDeferred.model_validate(
            {**common, "reason": decision.reason, "text": decision.text, "until": decision.until}
        )
    return subject_for(event), event


def consent_event(
    tenant_id: str,
    *,
    phone: str,
    state: ConsentState,
    channel_id: str | None,
    source: ConsentSource,
    at: datetime,
    cause_id: UUID,
    contact_id: UUID | None = None,
    keyword: str | None = None,
    actor: Actor | None = None,
) -> Event:
    """``ContactOptedOut`` or ``ContactOptedIn``, one per causing event."""
    model = ContactOptedOut if state is ConsentState.OPTED_OUT else ContactOptedIn
    return model(
        id=ids.derived("consent", cause_id),
        occurred_at=at,
        tenant_id=tenant_id,
        causation_id=cause_id,
        phone=phone,
        contact_id=contact_id,
        channel_id=channel_id,
        source=source,
        keyword=keyword,
        actor=actor,
    )


def confirmation_request(evt: MessageReceived, body: str, at: datetime) -> SendRequested:
    """The send request for the confirmation of a keyword in ``evt`` (one per inbound message).

    SendOrigin has no ``system`` value in v1: the request says ``api`` and is recognisable by
    ``requested_by`` (compliance) and, authoritatively, by compliance's own record of it.
    """
    contact = evt.message.contact
    return SendRequested(
        id=ids.derived("confirmation-request", evt.id),
        occurred_at=at,
        tenant_id=evt.tenant_id,
        correlation_id=evt.id,
        causation_id=evt.id,
        request=SendRequest(
            message_id=ids.derived("confirmation", evt.id),
            channel_id=evt.channel_id,
            to=Recipient(phone=contact.phone, wa_id=contact.wa_id, contact_id=evt.contact_id),
            conversation_id=evt.conversation_id,
            content=TextContent(body=body),
            origin=SendOrigin.API,
            idempotency_key=f"compliance:confirmation:{evt.id}",
            priority=SendPriority.HIGH,
            requested_by=COMPLIANCE_ACTOR,
        ),
    )
