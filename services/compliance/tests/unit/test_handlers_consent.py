"""Keywords in inbound messages, consent commands, and the confirmation exception."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

from zapflow.compliance import handlers
from zapflow.compliance.adapters.memory import ManualClock, MemoryStore, RecordingPublisher
from zapflow.compliance.domain import TenantRules
from zapflow.contracts.channels.v1 import ChannelRegistered, ChannelSettings, PaceSettings
from zapflow.contracts.common import Actor, ActorKind, SendOrigin
from zapflow.contracts.compliance.v1 import ChangeConsent, ConsentState
from zapflow.contracts.consent.v1 import ConsentSource, ContactOptedIn, ContactOptedOut
from zapflow.contracts.content import TemplateContent
from zapflow.contracts.messages.v1 import MessageReceived
from zapflow.contracts.model import (
    Direction,
    Group,
    InteractiveReply,
    Message,
    MessageKind,
    Party,
)
from zapflow.contracts.queries.compliance_v1 import ConsentQuery, PutRules
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested, SendVetoed
from zapflow.contracts.subjects import (
    CONSENT_OPTED_IN_V1,
    CONSENT_OPTED_OUT_V1,
    SENDER_SEND_APPROVED_V1,
    SENDING_REQUESTED_V1,
    SENDING_VETOED_V1,
)

TENANT, CHANNEL, PHONE = "acme", "ch-1", "+5511999990001"


def inbound(clock: ManualClock, text: str, **message: Any) -> MessageReceived:
    fields: dict[str, Any] = {
        "provider_message_id": str(uuid4()),
        "direction": Direction.INBOUND,
        "kind": MessageKind.TEXT,
        "sent_at": clock.now(),
        "contact": Party(phone=PHONE, wa_id="5511999990001"),
        "text": text,
        **message,
    }
    return MessageReceived(
        tenant_id=TENANT,
        occurred_at=clock.now(),
        message_id=uuid4(),
        conversation_id=uuid4(),
        contact_id=uuid4(),
        channel_id=fields.pop("channel_id", CHANNEL),
        provider="meta",
        message=Message(**fields),
    )


async def receive(
    evt: MessageReceived, store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await handlers.record_inbound(evt, store=store, publish=publish, clock=clock)


async def consent(store: MemoryStore, channel: str = CHANNEL) -> ConsentState | None:
    reply = await handlers.find_consent(
        ConsentQuery(tenant_id=TENANT, address=PHONE, channel_id=channel), store=store
    )
    return reply.state


def campaign_request(clock: ManualClock) -> SendRequested:
    return SendRequested(
        tenant_id=TENANT,
        occurred_at=clock.now(),
        request=SendRequest(
            message_id=uuid4(),
            channel_id=CHANNEL,
            to=Recipient(phone=PHONE),
            content=TemplateContent(name="promo", language="pt_BR"),
            origin=SendOrigin.CAMPAIGN,
            campaign_id=uuid4(),
            recipient_id=uuid4(),
            idempotency_key="k",
        ),
    )


async def test_stop_opts_out_announces_it_and_asks_to_confirm(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    stop = inbound(clock, "Parar")
    await receive(stop, store, publish, clock)

    assert await consent(store) is ConsentState.OPTED_OUT
    [out] = publish.of(CONSENT_OPTED_OUT_V1)
    assert isinstance(out, ContactOptedOut)
    assert (out.phone, out.keyword, out.source, out.channel_id) == (
        PHONE,
        "PARAR",
        ConsentSource.KEYWORD,
        None,
    )
    [confirm] = publish.of(SENDING_REQUESTED_V1)
    assert isinstance(confirm, SendRequested)
    assert confirm.request.to.phone == PHONE
    assert confirm.request.conversation_id == stop.conversation_id
    assert confirm.request.requested_by == Actor(kind=ActorKind.SYSTEM, id="compliance")
    assert confirm.causation_id == stop.id
    await receive(stop, store, publish, clock)  # redelivery
    assert len(publish.sent) == 2


async def test_the_confirmation_is_approved_and_campaigns_are_vetoed(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    registered = ChannelRegistered(
        tenant_id=TENANT,
        occurred_at=clock.now() - timedelta(days=9),
        channel=ChannelSettings(
            channel_id=CHANNEL, provider="meta", pace=PaceSettings(rate_per_second=5)
        ),
    )
    await handlers.apply_channel_event(registered, store=store)
    await receive(inbound(clock, "sair"), store, publish, clock)
    [confirm] = publish.of(SENDING_REQUESTED_V1)
    assert isinstance(confirm, SendRequested)

    await handlers.decide_request(confirm, store=store, publish=publish, clock=clock)
    await handlers.decide_request(
        campaign_request(clock), store=store, publish=publish, clock=clock
    )
    assert len(publish.of(SENDER_SEND_APPROVED_V1)) == 1
    [veto] = publish.of(SENDING_VETOED_V1)
    assert isinstance(veto, SendVetoed)
    assert veto.reason.value == "opted_out"


async def test_saying_stop_again_changes_nothing_and_sends_no_second_confirmation(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await receive(inbound(clock, "STOP"), store, publish, clock)
    clock.advance(timedelta(minutes=1))
    await receive(inbound(clock, "stop"), store, publish, clock)
    assert len(publish.of(SENDING_REQUESTED_V1)) == 1
    assert len(publish.of(CONSENT_OPTED_OUT_V1)) == 1


async def test_voltar_opts_back_in_with_its_own_confirmation(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await receive(inbound(clock, "STOP"), store, publish, clock)
    clock.advance(timedelta(minutes=1))
    await receive(inbound(clock, "Voltar"), store, publish, clock)
    assert await consent(store) is ConsentState.OPTED_IN
    [back] = publish.of(CONSENT_OPTED_IN_V1)
    assert isinstance(back, ContactOptedIn)
    bodies = [
        e.request.content for e in publish.of(SENDING_REQUESTED_V1) if isinstance(e, SendRequested)
    ]
    assert len(bodies) == 2
    assert len({b.model_dump_json() for b in bodies}) == 2


async def test_ordinary_messages_only_open_the_window(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await receive(inbound(clock, "stop the promo please"), store, publish, clock)
    assert not publish.sent
    assert await consent(store) is None
    assert set(store.tables.windows) == {
        (TENANT, CHANNEL, PHONE),
        (TENANT, CHANNEL, "5511999990001"),
    }


async def test_echoes_and_group_messages_are_not_the_customer_writing(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await receive(inbound(clock, "STOP", from_me=True), store, publish, clock)
    await receive(inbound(clock, "STOP", direction=Direction.OUTBOUND), store, publish, clock)
    await receive(inbound(clock, "STOP", group=Group(id="g1")), store, publish, clock)
    assert not publish.sent
    assert not store.tables.windows


async def test_a_tapped_button_can_carry_the_keyword(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    tap = inbound(
        clock,
        "",
        kind=MessageKind.INTERACTIVE,
        interactive=InteractiveReply(kind="button", title="Descadastrar"),
    )
    await receive(tap, store, publish, clock)
    assert await consent(store) is ConsentState.OPTED_OUT


async def test_channel_scoped_keywords_and_tenant_rules_apply(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    rules = TenantRules(
        keyword_scope="channel", opt_out_keywords=("CHEGA",), opt_out_confirmation=None
    )
    await handlers.put_rules(PutRules(tenant_id=TENANT, rules=rules), store=store, clock=clock)
    await receive(inbound(clock, "stop"), store, publish, clock)
    assert await consent(store) is None
    await receive(inbound(clock, "Chega!"), store, publish, clock)
    assert await consent(store) is ConsentState.OPTED_OUT
    assert await consent(store, "ch-2") is None
    assert not publish.of(SENDING_REQUESTED_V1)  # confirmation turned off
    [out] = publish.of(CONSENT_OPTED_OUT_V1)
    assert isinstance(out, ContactOptedOut)
    assert out.channel_id == CHANNEL


def change(clock: ManualClock, state: ConsentState, channel: str | None = None) -> ChangeConsent:
    return ChangeConsent(
        tenant_id=TENANT,
        occurred_at=clock.now(),
        phone=PHONE,
        channel_id=channel,
        state=state,
        source=ConsentSource.OPERATOR,
        requested_by=Actor(kind=ActorKind.OPERATOR, id="ana"),
    )


async def test_consent_commands_record_and_announce_changes_only(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    opt_in = change(clock, ConsentState.OPTED_IN)
    await handlers.change_consent(opt_in, store=store, publish=publish, clock=clock)
    await handlers.change_consent(opt_in, store=store, publish=publish, clock=clock)
    clock.advance(timedelta(seconds=1))
    again = change(clock, ConsentState.OPTED_IN)
    await handlers.change_consent(again, store=store, publish=publish, clock=clock)
    [event] = publish.sent
    assert isinstance(event[1], ContactOptedIn)
    assert event[1].actor == opt_in.requested_by
    assert await consent(store) is ConsentState.OPTED_IN


async def test_a_late_older_change_does_not_undo_a_newer_one(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    older = change(clock, ConsentState.OPTED_IN)
    clock.advance(timedelta(minutes=5))
    await receive(inbound(clock, "STOP"), store, publish, clock)
    await handlers.change_consent(older, store=store, publish=publish, clock=clock)
    assert await consent(store) is ConsentState.OPTED_OUT
    assert not publish.of(CONSENT_OPTED_IN_V1)


async def test_a_channel_opt_in_after_a_tenant_wide_opt_out_reopens_that_channel(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await receive(inbound(clock, "STOP"), store, publish, clock)
    clock.advance(timedelta(minutes=1))
    command = change(clock, ConsentState.OPTED_IN, channel="ch-2")
    await handlers.change_consent(command, store=store, publish=publish, clock=clock)
    assert await consent(store, "ch-2") is ConsentState.OPTED_IN
    assert await consent(store, CHANNEL) is ConsentState.OPTED_OUT
