"""``decide``: every rule's approve, veto and defer paths, on a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import uuid4

import pytest

from zapflow.compliance.domain import (
    ChannelState,
    Decision,
    DecisionState,
    Outcome,
    TenantRules,
    daily_cap,
    decide,
)
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.content import OutboundContent, TemplateContent, TextContent
from zapflow.contracts.sending.v1 import DeferReason, Recipient, SendRequest, VetoReason

NOW = datetime(2025, 6, 10, 15, 0, tzinfo=UTC)  # 12:00 in São Paulo
PHONE = "+5511999990001"
TEMPLATE = TemplateContent(name="promo", language="pt_BR", body_params=("Ana",))
CHANNEL = ChannelState(
    channel_id="ch-1",
    provider="meta",
    timezone="America/Sao_Paulo",
    quiet_hours_start=None,
    quiet_hours_end=None,
    require_opt_in=False,
    service_window_hours=24,
    daily_cap=None,
    enabled=True,
    registered_at=NOW - timedelta(days=90),
)


def request(
    origin: SendOrigin = SendOrigin.OPERATOR,
    content: OutboundContent | None = None,
    **fields: Any,
) -> SendRequest:
    campaign = origin is SendOrigin.CAMPAIGN
    return SendRequest(
        message_id=uuid4(),
        channel_id="ch-1",
        to=Recipient(phone=PHONE),
        content=content or TextContent(body="Olá!"),
        origin=origin,
        campaign_id=uuid4() if campaign else None,
        recipient_id=uuid4() if campaign else None,
        idempotency_key="k",
        **fields,
    )


def state(
    channel: ChannelState | None = CHANNEL,
    rules: TenantRules | None = None,
    **fields: Any,
) -> DecisionState:
    fields.setdefault("last_inbound_at", NOW - timedelta(hours=1))  # inside the window
    return DecisionState(rules=rules or TenantRules(), channel=channel, **fields)


def campaign() -> SendRequest:
    return request(SendOrigin.CAMPAIGN, TEMPLATE)


def quiet(start: time, end: time, tz: str = "America/Sao_Paulo") -> ChannelState:
    return replace(CHANNEL, quiet_hours_start=start, quiet_hours_end=end, timezone=tz)


def assert_veto(decision: Decision, reason: VetoReason) -> None:
    assert decision.outcome is Outcome.VETOED
    assert decision.reason is reason
    assert decision.text
    assert PHONE not in decision.text


# -- channel, campaign, expiry ---------------------------------------------------------------


def test_an_operator_reply_inside_the_window_is_approved_without_counting() -> None:
    decision = decide(request(), state(), NOW)
    assert decision.outcome is Outcome.APPROVED
    assert decision.reason is None
    assert decision.counts_recipient is False


def test_unknown_and_disabled_channels_are_vetoed() -> None:
    assert_veto(decide(request(), state(channel=None), NOW), VetoReason.UNKNOWN_CHANNEL)
    disabled = replace(CHANNEL, enabled=False)
    assert_veto(decide(request(), state(channel=disabled), NOW), VetoReason.CHANNEL_DISABLED)


def test_requests_of_a_cancelled_campaign_are_vetoed_others_are_not() -> None:
    cancelled = state(campaign_cancelled=True)
    assert_veto(decide(campaign(), cancelled, NOW), VetoReason.CAMPAIGN_INACTIVE)
    assert decide(request(), cancelled, NOW).outcome is Outcome.APPROVED


def test_a_request_past_not_after_is_expired() -> None:
    late = request(not_after=NOW - timedelta(seconds=1))
    assert_veto(decide(late, state(), NOW), VetoReason.EXPIRED)
    assert decide(request(not_after=NOW), state(), NOW).outcome is Outcome.APPROVED


def test_invalid_content_is_vetoed_with_the_problem_in_words() -> None:
    decision = decide(request(content=TextContent(body="  \n ")), state(), NOW)
    assert_veto(decision, VetoReason.INVALID_CONTENT)
    assert "empty" in decision.text


# -- consent ---------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", list(SendOrigin))
def test_an_opted_out_contact_gets_nothing_from_any_origin(origin: SendOrigin) -> None:
    req = request(origin, TEMPLATE)
    assert_veto(decide(req, state(consent=ConsentState.OPTED_OUT), NOW), VetoReason.OPTED_OUT)


def test_the_confirmation_reaches_an_opted_out_contact_but_must_be_valid() -> None:
    confirming = state(consent=ConsentState.OPTED_OUT, is_confirmation=True, last_inbound_at=None)
    assert decide(request(SendOrigin.API), confirming, NOW).outcome is Outcome.APPROVED
    blank = request(SendOrigin.API, TextContent(body=" "))
    assert_veto(decide(blank, confirming, NOW), VetoReason.INVALID_CONTENT)
    off = replace(confirming, channel=replace(CHANNEL, enabled=False))
    assert_veto(decide(request(SendOrigin.API), off, NOW), VetoReason.CHANNEL_DISABLED)


def test_campaigns_need_an_opt_in_when_the_channel_requires_it() -> None:
    strict = replace(CHANNEL, require_opt_in=True)
    assert_veto(decide(campaign(), state(channel=strict), NOW), VetoReason.NO_OPT_IN)
    opted_in = state(channel=strict, consent=ConsentState.OPTED_IN)
    assert decide(campaign(), opted_in, NOW).outcome is Outcome.APPROVED
    assert decide(request(), state(channel=strict), NOW).outcome is Outcome.APPROVED


def test_the_tenant_rule_on_opt_in_overrides_the_channel_policy() -> None:
    strict, lax = replace(CHANNEL, require_opt_in=True), replace(CHANNEL, require_opt_in=False)
    waive = TenantRules(require_opt_in_for_campaigns=False)
    demand = TenantRules(require_opt_in_for_campaigns=True)
    assert decide(campaign(), state(channel=strict, rules=waive), NOW).outcome is Outcome.APPROVED
    assert_veto(decide(campaign(), state(channel=lax, rules=demand), NOW), VetoReason.NO_OPT_IN)


# -- service window --------------------------------------------------------------------------


def test_free_form_outside_the_window_is_vetoed_templates_are_not() -> None:
    stale = state(last_inbound_at=NOW - timedelta(hours=24))
    decision = decide(request(), stale, NOW)
    assert_veto(decision, VetoReason.OUTSIDE_WINDOW)
    assert "24 h" in decision.text
    assert_veto(decide(request(), state(last_inbound_at=None), NOW), VetoReason.OUTSIDE_WINDOW)
    assert decide(request(content=TEMPLATE), stale, NOW).outcome is Outcome.APPROVED


def test_the_window_length_comes_from_the_channel_then_the_tenant() -> None:
    three_hours_ago = NOW - timedelta(hours=3)
    short_channel = state(channel=replace(CHANNEL, service_window_hours=2))
    assert_veto(
        decide(request(), replace(short_channel, last_inbound_at=three_hours_ago), NOW),
        VetoReason.OUTSIDE_WINDOW,
    )
    tenant_wider = replace(short_channel, rules=TenantRules(service_window_hours=4))
    assert (
        decide(request(), replace(tenant_wider, last_inbound_at=three_hours_ago), NOW).outcome
        is Outcome.APPROVED
    )


def test_a_tenant_may_turn_the_window_off() -> None:
    off = state(rules=TenantRules(enforce_service_window=False), last_inbound_at=None)
    assert decide(request(), off, NOW).outcome is Outcome.APPROVED


# -- duplicates ------------------------------------------------------------------------------


def test_the_same_content_within_the_interval_is_a_duplicate() -> None:
    recent = state(last_same_content_at=NOW - timedelta(minutes=59))
    decision = decide(request(SendOrigin.API, TEMPLATE), recent, NOW)
    assert_veto(decision, VetoReason.DUPLICATE)
    assert "1 h" in decision.text
    older = state(last_same_content_at=NOW - timedelta(hours=1))
    assert decide(request(SendOrigin.API, TEMPLATE), older, NOW).outcome is Outcome.APPROVED


def test_duplicates_are_checked_only_for_the_configured_origins_and_interval() -> None:
    recent = NOW - timedelta(seconds=5)
    assert decide(request(), state(last_same_content_at=recent), NOW).outcome is Outcome.APPROVED
    strict = TenantRules(duplicate_origins=(SendOrigin.OPERATOR,))
    assert_veto(
        decide(request(), state(rules=strict, last_same_content_at=recent), NOW),
        VetoReason.DUPLICATE,
    )
    off = TenantRules(duplicate_interval_s=0)
    api = request(SendOrigin.API, TEMPLATE)
    assert decide(api, state(rules=off, last_same_content_at=recent), NOW).outcome is (
        Outcome.APPROVED
    )


# -- quiet hours -----------------------------------------------------------------------------


def test_campaigns_in_quiet_hours_are_deferred_to_their_end_in_local_time() -> None:
    channel = quiet(time(11), time(13, 30))  # it is 12:00 in São Paulo
    decision = decide(campaign(), state(channel=channel), NOW)
    assert decision.outcome is Outcome.DEFERRED
    assert decision.reason is DeferReason.QUIET_HOURS
    assert decision.until == datetime(2025, 6, 10, 16, 30, tzinfo=UTC)
    assert "13:30:00-03:00" in decision.text


def test_quiet_hours_across_midnight_end_the_next_morning() -> None:
    late = datetime(2025, 6, 11, 1, 0, tzinfo=UTC)  # 22:00 in São Paulo
    decision = decide(campaign(), state(channel=quiet(time(21), time(8))), late)
    assert decision.until == datetime(2025, 6, 11, 11, 0, tzinfo=UTC)  # 08:00 -03:00


def test_operator_and_api_sends_are_not_deferred_and_outside_quiet_hours_all_pass() -> None:
    channel = quiet(time(11), time(13))
    assert decide(request(), state(channel=channel), NOW).outcome is Outcome.APPROVED
    api = request(SendOrigin.API, TEMPLATE)
    assert decide(api, state(channel=channel), NOW).outcome is Outcome.APPROVED
    evening = quiet(time(21), time(8))
    assert decide(campaign(), state(channel=evening), NOW).outcome is Outcome.APPROVED


def test_tenant_quiet_hours_apply_when_the_channel_has_none() -> None:
    rules = TenantRules(
        timezone="Europe/Lisbon", quiet_hours_start=time(15), quiet_hours_end=time(17)
    )
    decision = decide(campaign(), state(rules=rules), NOW)  # 16:00 in Lisbon (WEST)
    assert decision.outcome is Outcome.DEFERRED
    assert decision.until == datetime(2025, 6, 10, 16, 0, tzinfo=UTC)


def test_a_deferral_past_not_after_is_a_veto_expired() -> None:
    req = request(SendOrigin.CAMPAIGN, TEMPLATE, not_after=NOW + timedelta(minutes=10))
    decision = decide(req, state(channel=quiet(time(11), time(13))), NOW)
    assert_veto(decision, VetoReason.EXPIRED)
    assert "Quiet hours" in decision.text


# -- daily cap and warm-up -------------------------------------------------------------------


def capped(cap: int | None, **fields: Any) -> DecisionState:
    return state(channel=replace(CHANNEL, daily_cap=cap), **fields)


def test_a_new_campaign_recipient_counts_and_the_cap_defers_to_the_next_local_day() -> None:
    assert decide(campaign(), capped(2, recipients_today=1), NOW).counts_recipient is True
    decision = decide(campaign(), capped(2, recipients_today=2), NOW)
    assert decision.outcome is Outcome.DEFERRED
    assert decision.reason is DeferReason.DAILY_CAP
    assert decision.until == datetime(2025, 6, 11, 3, 0, tzinfo=UTC)  # midnight in São Paulo


def test_a_cap_deferral_skips_quiet_hours_at_midnight() -> None:
    channel = replace(quiet(time(22), time(7)), daily_cap=1)
    decision = decide(campaign(), state(channel=channel, recipients_today=1), NOW)
    assert decision.until == datetime(2025, 6, 11, 10, 0, tzinfo=UTC)  # 07:00 -03:00


def test_business_initiated_sends_over_the_cap_are_vetoed_when_not_campaigns() -> None:
    outside = capped(1, recipients_today=1, last_inbound_at=None)
    assert_veto(decide(request(SendOrigin.API, TEMPLATE), outside, NOW), VetoReason.DAILY_CAP)


def test_replies_in_the_window_and_known_recipients_are_not_capped() -> None:
    full = capped(1, recipients_today=1)
    in_window = decide(request(), full, NOW)
    assert in_window.outcome is Outcome.APPROVED
    assert in_window.counts_recipient is False
    known = decide(campaign(), capped(1, recipients_today=1, recipient_counted_today=True), NOW)
    assert known.outcome is Outcome.APPROVED
    assert known.counts_recipient is False


def test_the_warm_up_schedule_lowers_the_cap_of_young_channels() -> None:
    rules = TenantRules(warmup_schedule=(10, 20, 40))
    young = replace(CHANNEL, daily_cap=1000, registered_at=NOW - timedelta(days=1))
    assert daily_cap(young, rules, NOW) == 20
    assert daily_cap(replace(young, registered_at=NOW - timedelta(days=3)), rules, NOW) == 1000
    unlimited = replace(young, daily_cap=None)
    assert daily_cap(unlimited, rules, NOW) == 20
    assert daily_cap(replace(unlimited, registered_at=NOW - timedelta(days=30)), rules, NOW) is None
    decision = decide(campaign(), state(channel=young, rules=rules, recipients_today=20), NOW)
    assert decision.reason is DeferReason.DAILY_CAP


def test_warm_up_days_follow_the_channels_local_calendar() -> None:
    # registered at 23:30 local on June 9th; at 00:30 local on June 10th it is day 1 already
    registered = datetime(2025, 6, 10, 2, 30, tzinfo=UTC)
    channel = replace(CHANNEL, registered_at=registered)
    rules = TenantRules(warmup_schedule=(5, 50))
    assert daily_cap(channel, rules, datetime(2025, 6, 10, 3, 30, tzinfo=UTC)) == 50
    assert daily_cap(channel, rules, datetime(2025, 6, 10, 2, 45, tzinfo=UTC)) == 5


def test_quiet_hours_are_checked_before_the_cap() -> None:
    channel = replace(quiet(time(11), time(13)), daily_cap=1)
    decision = decide(campaign(), state(channel=channel, recipients_today=5), NOW)
    assert decision.reason is DeferReason.QUIET_HOURS
