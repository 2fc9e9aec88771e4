"""Consent from two sources: keywords in inbound messages, and ``ChangeConsent`` commands.

Inbound messages also open the customer-service window. Consent is last-writer-wins by the time
it was given (message ``sent_at``, command ``occurred_at``), so replays and out-of-order
deliveries settle on the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from zapflow.compliance.domain import ConsentRecord, KeywordMatch, effective_consent, match_keyword
from zapflow.compliance.events import confirmation_request, consent_event
from zapflow.compliance.handlers.outbox import flush_outbox
from zapflow.compliance.ports import Clock, Publisher, Store, Unit
from zapflow.contracts.common import Actor, ActorKind
from zapflow.contracts.compliance.v1 import ChangeConsent, ConsentState
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.messages.v1 import MessageReceived
from zapflow.contracts.model import Direction, Message, MessageKind
from zapflow.contracts.subjects import subject_for

INBOUND_CONSUMER: Final = "compliance-inbound"
COMMANDS_CONSUMER: Final = "compliance-commands"


def inbound_text(message: Message) -> str | None:
    """What a keyword is looked for in: the text, or the title of a tapped button."""
    if message.kind is MessageKind.INTERACTIVE and message.interactive is not None:
        return message.interactive.title or message.text
    return message.text if message.kind is MessageKind.TEXT else None


async def record_inbound(
    evt: MessageReceived, *, store: Store, publish: Publisher, clock: Clock
) -> None:
    """Open the service window; a keyword message opts the contact out or back in."""
    msg = evt.message
    addresses = [a for a in dict.fromkeys((msg.contact.phone, msg.contact.wa_id)) if a]
    customer_wrote = msg.direction is Direction.INBOUND and not msg.from_me and msg.group is None
    if not customer_wrote or not addresses:
        return
    async with store.unit() as uow:
        if await uow.claim_event(evt.id, INBOUND_CONSUMER):
            await uow.record_inbound(evt.tenant_id, evt.channel_id, addresses, msg.sent_at)
            match = match_keyword(inbound_text(msg), await uow.rules(evt.tenant_id))
            if match is not None:
                await _apply_keyword(uow, evt, match, addresses, clock)
    await flush_outbox(store, publish, clock, caused_by=str(evt.id))


async def _apply_keyword(
    uow: Unit, evt: MessageReceived, match: KeywordMatch, addresses: Sequence[str], clock: Clock
) -> None:
    rules = await uow.rules(evt.tenant_id)
    scope = evt.channel_id if rules.keyword_scope == "channel" else None
    record = ConsentRecord(scope, match.state, evt.message.sent_at, ConsentSource.KEYWORD)
    before = effective_consent(await uow.consents(evt.tenant_id, addresses), evt.channel_id)
    for address in addresses:
        await uow.put_consent(evt.tenant_id, address, record)
    after = effective_consent(await uow.consents(evt.tenant_id, addresses), evt.channel_id)
    if _state(before) is _state(after):
        return  # nothing changed (already in that state, or an older message)
    now, key = clock.now(), str(evt.id)
    if phone := evt.message.contact.phone:  # consent events need a phone (v1)
        event = consent_event(
            evt.tenant_id, phone=phone, state=match.state, channel_id=scope,
            source=ConsentSource.KEYWORD, at=now, cause_id=evt.id, contact_id=evt.contact_id,
            keyword=match.keyword, actor=Actor(kind=ActorKind.CUSTOMER, id=str(evt.contact_id)),
        )  # fmt: skip
        await uow.enqueue(key, subject_for(event), event)
    opted_out = match.state is ConsentState.OPTED_OUT
    body = rules.opt_out_confirmation if opted_out else rules.opt_in_confirmation
    if body:
        request = confirmation_request(evt, body, now)
        await uow.add_confirmation(evt.tenant_id, request.request.message_id)
        await uow.enqueue(key, subject_for(request), request)


def _state(record: ConsentRecord | None) -> ConsentState | None:
    return record.state if record else None


async def change_consent(
    evt: ChangeConsent, *, store: Store, publish: Publisher, clock: Clock
) -> None:
    """Record an operator/API opt-in or opt-out; announce it when the state changed."""
    record = ConsentRecord(evt.channel_id, evt.state, evt.occurred_at, evt.source)
    async with store.unit() as uow:
        if await uow.claim_event(evt.id, COMMANDS_CONSUMER):
            rows = await uow.consents(evt.tenant_id, [evt.phone])
            previous = next((r.state for r in rows if r.channel_id == evt.channel_id), None)
            stored = await uow.put_consent(evt.tenant_id, evt.phone, record)
            if stored and previous is not evt.state:
                event = consent_event(
                    evt.tenant_id, phone=evt.phone, state=evt.state, channel_id=evt.channel_id,
                    source=evt.source, at=clock.now(), cause_id=evt.id,
                    contact_id=evt.contact_id, actor=evt.requested_by,
                )  # fmt: skip
                await uow.enqueue(str(evt.id), subject_for(event), event)
    await flush_outbox(store, publish, clock, caused_by=str(evt.id))
