"""Deciding requests through the ports: outputs, idempotency, deferrals, retries."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from uuid import uuid4

import pytest

from zapflow.compliance import handlers, ids
from zapflow.compliance.adapters.memory import ManualClock, MemoryStore, RecordingPublisher
from zapflow.compliance.domain import ChannelState, Outcome
from zapflow.compliance.ports import OutboxItem
from zapflow.contracts.campaigns.v1 import CampaignCancelled
from zapflow.contracts.channels.v1 import (
    ChannelPolicy,
    ChannelRegistered,
    ChannelSettings,
    PaceSettings,
)
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import TemplateContent
from zapflow.contracts.errors import TransientError
from zapflow.contracts.queries.compliance_v1 import DecisionQuery
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.sending.v1 import (
    Recipient,
    SendDeferred,
    SendRequest,
    SendRequested,
    SendVetoed,
)
from zapflow.contracts.subjects import (
    SENDER_SEND_APPROVED_V1,
    SENDING_DEFERRED_V1,
    SENDING_VETOED_V1,
)

TENANT, CHANNEL = "acme", "ch-1"
TEMPLATE = TemplateContent(name="promo", language="pt_BR", body_params=("Ana",))


def requested(
    clock: ManualClock, origin: SendOrigin = SendOrigin.API, campaign_id: object = None
) -> SendRequested:
    campaign = origin is SendOrigin.CAMPAIGN
    return SendRequested(
        tenant_id=TENANT,
        occurred_at=clock.now(),
        correlation_id=uuid4(),
        request=SendRequest(
            message_id=uuid4(),
            channel_id=CHANNEL,
            to=Recipient(phone="+5511999990001"),
            content=TEMPLATE,
            origin=origin,
            campaign_id=campaign_id or (uuid4() if campaign else None),
            recipient_id=uuid4() if campaign else None,
            idempotency_key="k",
        ),
    )


async def register(store: MemoryStore, clock: ManualClock, **policy: object) -> None:
    evt = ChannelRegistered(
        tenant_id=TENANT,
        occurred_at=clock.now() - timedelta(days=60),
        channel=ChannelSettings(
            channel_id=CHANNEL,
            provider="meta",
            pace=PaceSettings(rate_per_second=5),
            policy=ChannelPolicy.model_validate({"timezone": "America/Sao_Paulo", **policy}),
        ),
    )
    await handlers.apply_channel_event(evt, store=store)


async def decide(
    evt: SendRequested, store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await handlers.decide_request(evt, store=store, publish=publish, clock=clock)


async def test_an_approval_goes_to_the_senders_subject_with_a_derived_id(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await register(store, clock)
    evt = requested(clock)
    await decide(evt, store, publish, clock)

    [(subject, event)] = publish.sent
    assert subject == f"{SENDER_SEND_APPROVED_V1}.{TENANT}.{CHANNEL}"
    assert isinstance(event, SendApproved)
    mid = evt.request.message_id
    assert event.id == ids.decision_event_id(mid, 1)
    assert event.decision_id == ids.decision_id(mid, 1)
    assert (event.causation_id, event.correlation_id) == (evt.id, evt.correlation_id)
    assert event.request == evt.request
    assert not await store.unpublished()  # the outbox row is marked published


async def test_the_same_request_twice_gives_one_decision_and_one_output(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await register(store, clock)
    evt = requested(clock)
    await decide(evt, store, publish, clock)
    await decide(evt, store, publish, clock)  # redelivery
    republished = evt.model_copy(update={"id": uuid4()})  # same message, new envelope
    await decide(republished, store, publish, clock)
    assert len(publish.sent) == 1
    assert len(store.tables.decisions) == 1


async def test_a_failed_publish_is_retried_with_the_same_event_on_redelivery(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await register(store, clock)
    evt = requested(clock)
    publish.fail = 1
    with pytest.raises(ConnectionError):  # the consumer naks; the decision is already stored
        await decide(evt, store, publish, clock)
    assert len(store.tables.decisions) == 1
    clock.advance(timedelta(seconds=5))
    await decide(evt, store, publish, clock)
    [(_, event)] = publish.sent
    assert event.id == ids.decision_event_id(evt.request.message_id, 1)
    assert event.occurred_at == clock.now() - timedelta(seconds=5)  # the stored event, unchanged


async def test_a_first_decision_publishes_what_it_enqueued_without_reading_the_outbox(
    publish: RecordingPublisher, clock: ManualClock
) -> None:
    reads: list[str | None] = []

    class CountingStore(MemoryStore):
        async def unpublished(
            self, *, caused_by: str | None = None, older_than_s: float = 0.0, limit: int = 500
        ) -> list[OutboxItem]:
            reads.append(caused_by)
            return await super().unpublished(
                caused_by=caused_by, older_than_s=older_than_s, limit=limit
            )

    store = CountingStore()
    await register(store, clock)
    evt = requested(clock)
    await decide(evt, store, publish, clock)
    assert reads == []
    [(_, event)] = publish.sent
    assert event.id == ids.decision_event_id(evt.request.message_id, 1)
    assert store.tables.outbox[event.id][3] == clock.now()  # marked published
    await decide(evt, store, publish, clock)  # a redelivery reads back what is pending: nothing
    assert reads == [str(evt.request.message_id)]
    assert len(publish.sent) == 1


async def test_an_unknown_channel_is_retried_while_young_then_vetoed(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    evt = requested(clock)
    with pytest.raises(TransientError):
        await decide(evt, store, publish, clock)
    assert not store.tables.decisions
    clock.advance(timedelta(seconds=31))
    await decide(evt, store, publish, clock)
    [vetoed] = publish.of(SENDING_VETOED_V1)
    assert isinstance(vetoed, SendVetoed)
    assert vetoed.reason.value == "unknown_channel"


async def test_a_deferred_campaign_is_approved_when_its_time_comes(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await register(store, clock, quiet_hours_start=time(11), quiet_hours_end=time(13))
    evt = requested(clock, SendOrigin.CAMPAIGN)
    await decide(evt, store, publish, clock)
    [deferred] = publish.of(SENDING_DEFERRED_V1)
    assert isinstance(deferred, SendDeferred)
    assert deferred.until == datetime(2025, 6, 10, 16, 0, tzinfo=UTC)

    assert await handlers.redecide_due(store=store, publish=publish, clock=clock) == 0
    clock.at = deferred.until
    assert await handlers.redecide_due(store=store, publish=publish, clock=clock) == 1
    [approved] = publish.of(SENDER_SEND_APPROVED_V1)
    assert isinstance(approved, SendApproved)
    assert approved.decision_id == ids.decision_id(evt.request.message_id, 2)
    assert approved.causation_id == evt.id
    assert not store.tables.deferred

    reply = await handlers.find_decision(
        DecisionQuery(tenant_id=TENANT, message_id=evt.request.message_id), store=store
    )
    assert (reply.outcome, reply.evaluations, reply.until) == (Outcome.APPROVED, 2, None)
    assert await handlers.redecide_due(store=store, publish=publish, clock=clock) == 0
    await decide(evt, store, publish, clock)  # a late redelivery of the request changes nothing
    assert len(publish.sent) == 2


async def test_cancelling_a_campaign_vetoes_its_deferred_sends_at_once(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await register(store, clock, quiet_hours_start=time(11), quiet_hours_end=time(13))
    evt = requested(clock, SendOrigin.CAMPAIGN)
    await decide(evt, store, publish, clock)
    assert evt.request.campaign_id is not None
    cancel = CampaignCancelled(
        tenant_id=TENANT, occurred_at=clock.now(), campaign_id=evt.request.campaign_id
    )
    await handlers.cancel_campaign(cancel, store=store)
    await handlers.redecide_due(store=store, publish=publish, clock=clock)
    [vetoed] = publish.of(SENDING_VETOED_V1)
    assert isinstance(vetoed, SendVetoed)
    assert vetoed.reason.value == "campaign_inactive"

    later = requested(clock, SendOrigin.CAMPAIGN, campaign_id=evt.request.campaign_id)
    await decide(later, store, publish, clock)
    assert len(publish.of(SENDING_VETOED_V1)) == 2


async def test_approvals_fill_the_daily_counter_once_per_recipient(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await register(store, clock)
    for _ in range(2):
        evt = requested(clock, SendOrigin.CAMPAIGN)
        content = TEMPLATE.model_copy(update={"body_params": (str(uuid4()),)})
        fresh = evt.request.model_copy(update={"content": content})
        await decide(evt.model_copy(update={"request": fresh}), store, publish, clock)
    assert [len(v) for v in store.tables.counters.values()] == [1]
    assert len(publish.of(SENDER_SEND_APPROVED_V1)) == 2


async def test_the_sweep_publishes_what_a_crash_left_in_the_outbox(
    store: MemoryStore, publish: RecordingPublisher, clock: ManualClock
) -> None:
    await register(store, clock)
    publish.fail = 1
    with pytest.raises(ConnectionError):
        await decide(requested(clock), store, publish, clock)
    assert await handlers.flush_outbox(store, publish, clock) == 1
    assert await handlers.flush_outbox(store, publish, clock) == 0
    assert len(publish.sent) == 1


def test_channel_state_keeps_the_policy_and_the_tier() -> None:
    settings = ChannelSettings(
        channel_id=CHANNEL,
        provider="meta",
        pace=PaceSettings(rate_per_second=5, daily_cap=250),
        policy=ChannelPolicy(timezone="America/Sao_Paulo", require_opt_in=True),
    )
    state = ChannelState.from_settings(settings, registered_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert (state.daily_cap, state.require_opt_in, state.timezone) == (
        250,
        True,
        "America/Sao_Paulo",
    )
