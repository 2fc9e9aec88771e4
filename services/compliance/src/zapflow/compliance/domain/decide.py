"""``decide(request, state, now)``: approve, defer or veto one send request.

Rules run in this order and the first that objects decides:

1. channel known and enabled (``unknown_channel``, ``channel_disabled``);
2. campaign not cancelled (``campaign_inactive``); ``not_after`` not passed (``expired``);
3. content valid (``invalid_content``);
4. contact not opted out (``opted_out``); campaigns need a recorded opt-in when required
   (``no_opt_in``);
5. free-form only inside the service window (``outside_window``);
6. not the same content to the same contact within the interval (``duplicate``);
7. campaigns wait out quiet hours (deferred ``quiet_hours``);
8. business-initiated sends (campaigns, and anything outside the service window) to a recipient
   new today count against the channel's daily cap (tier, capped further by the warm-up
   schedule): campaigns over the cap are deferred to the next local day, other sends vetoed
   (``daily_cap``).

A deferral that would end after the request's ``not_after`` becomes a veto ``expired``. The
opt-out/opt-in confirmation compliance itself requested is checked only for 1 and 3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from zapflow.compliance.domain.content import content_problem
from zapflow.compliance.domain.local_time import (
    local_date,
    next_local_midnight,
    quiet_until,
    zone,
)
from zapflow.compliance.domain.model import ChannelState, Decision, DecisionState, TenantRules
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.content import TemplateContent
from zapflow.contracts.sending.v1 import DeferReason, SendRequest, VetoReason


@dataclass(frozen=True, slots=True)
class _Ctx:
    request: SendRequest
    state: DecisionState
    channel: ChannelState
    now: datetime

    @property
    def campaign(self) -> bool:
        return self.request.origin is SendOrigin.CAMPAIGN

    @property
    def window_hours(self) -> int:
        return self.state.rules.service_window_hours or self.channel.service_window_hours

    @property
    def in_window(self) -> bool:
        last = self.state.last_inbound_at
        return last is not None and self.now - last < timedelta(hours=self.window_hours)

    @property
    def counts_recipient(self) -> bool:
        business_initiated = self.campaign or not self.in_window
        return business_initiated and not self.state.recipient_counted_today


Check = Callable[[_Ctx], Decision | None]


def decide(request: SendRequest, state: DecisionState, now: datetime) -> Decision:
    """The verdict on ``request`` at ``now`` (UTC-aware)."""
    channel = state.channel
    if channel is None:
        return Decision.veto(VetoReason.UNKNOWN_CHANNEL, "Compliance does not know this channel.")
    if not channel.enabled:
        return Decision.veto(VetoReason.CHANNEL_DISABLED, "The channel is disabled.")
    ctx = _Ctx(request, state, channel, now)
    checks = (_content,) if state.is_confirmation else _CHECKS
    for check in checks:
        if (decision := check(ctx)) is not None:
            return decision
    if state.is_confirmation:
        return Decision.approve("Consent confirmation: exempt from the other rules.")
    return _schedule(ctx)


def local_day(channel: ChannelState | None, now: datetime) -> date:
    """The channel's local date at ``now``: the day daily caps count in."""
    return local_date(now, zone(channel.timezone if channel else None))


def _campaign(ctx: _Ctx) -> Decision | None:
    if ctx.campaign and ctx.state.campaign_cancelled:
        return Decision.veto(VetoReason.CAMPAIGN_INACTIVE, "The campaign was cancelled.")
    return None


def _expiry(ctx: _Ctx) -> Decision | None:
    not_after = ctx.request.not_after
    if not_after is not None and ctx.now > not_after:
        return Decision.veto(VetoReason.EXPIRED, "The request passed its not_after time.")
    return None


def _content(ctx: _Ctx) -> Decision | None:
    problem = content_problem(ctx.request.content, ctx.state.rules)
    return Decision.veto(VetoReason.INVALID_CONTENT, problem) if problem else None


def _consent(ctx: _Ctx) -> Decision | None:
    consent = ctx.state.consent
    if consent is ConsentState.OPTED_OUT:
        return Decision.veto(VetoReason.OPTED_OUT, "The contact opted out of messages.")
    rule = ctx.state.rules.require_opt_in_for_campaigns
    required = ctx.channel.require_opt_in if rule is None else rule
    if ctx.campaign and required and consent is not ConsentState.OPTED_IN:
        return Decision.veto(
            VetoReason.NO_OPT_IN, "Campaign messages need the contact's recorded opt-in."
        )
    return None


def _window(ctx: _Ctx) -> Decision | None:
    free_form = not isinstance(ctx.request.content, TemplateContent)
    if ctx.state.rules.enforce_service_window and free_form and not ctx.in_window:
        return Decision.veto(
            VetoReason.OUTSIDE_WINDOW,
            f"Free-form messages are allowed only within {ctx.window_hours} h of the "
            "contact's last message; send an approved template instead.",
        )
    return None


def _duplicate(ctx: _Ctx) -> Decision | None:
    rules, last = ctx.state.rules, ctx.state.last_same_content_at
    interval = timedelta(seconds=rules.duplicate_interval_s)
    if ctx.request.origin not in rules.duplicate_origins or not interval or last is None:
        return None
    if ctx.now - last < interval:
        return Decision.veto(
            VetoReason.DUPLICATE,
            f"The same content went to this contact less than {_span(interval)} ago.",
        )
    return None


_CHECKS: tuple[Check, ...] = (_campaign, _expiry, _content, _consent, _window, _duplicate)


def _schedule(ctx: _Ctx) -> Decision:
    quiet = _quiet_hours(ctx)
    if ctx.campaign and quiet is not None:
        start, end, tz = quiet
        until = quiet_until(ctx.now, start, end, tz)
        if until is not None:
            text = f"Quiet hours {start:%H:%M}-{end:%H:%M} ({_zone_name(tz)})"
            return _defer(ctx, DeferReason.QUIET_HOURS, until, text)
    cap = daily_cap(ctx.channel, ctx.state.rules, ctx.now)
    if ctx.counts_recipient and cap is not None and ctx.state.recipients_today >= cap:
        text = f"The channel reached its daily limit of {cap} new recipients"
        if not ctx.campaign:
            return Decision.veto(VetoReason.DAILY_CAP, text + " for today.")
        until = next_local_midnight(ctx.now, zone(ctx.channel.timezone))
        if quiet is not None:
            until = quiet_until(until, *quiet) or until
        return _defer(ctx, DeferReason.DAILY_CAP, until, text)
    return Decision.approve("Approved.", counts_recipient=ctx.counts_recipient)


def _defer(ctx: _Ctx, reason: DeferReason, until: datetime, why: str) -> Decision:
    not_after = ctx.request.not_after
    if not_after is not None and until > not_after:
        return Decision.veto(VetoReason.EXPIRED, f"{why}; it could not be sent before not_after.")
    local = until.astimezone(zone(ctx.channel.timezone))
    return Decision.defer(reason, until, f"{why}; deferred to {local.isoformat()}.")


def _quiet_hours(ctx: _Ctx) -> tuple[time, time, tzinfo] | None:
    ch, rules = ctx.channel, ctx.state.rules
    if ch.quiet_hours_start is not None and ch.quiet_hours_end is not None:
        return ch.quiet_hours_start, ch.quiet_hours_end, zone(ch.timezone)
    if rules.quiet_hours_start is not None and rules.quiet_hours_end is not None:
        return rules.quiet_hours_start, rules.quiet_hours_end, zone(rules.timezone or ch.timezone)
    return None


def daily_cap(channel: ChannelState, rules: TenantRules, now: datetime) -> int | None:
    """New recipients the channel may reach today: its tier, lowered by the warm-up schedule."""
    tz = zone(channel.timezone)
    age = (local_date(now, tz) - local_date(channel.registered_at, tz)).days
    schedule = rules.warmup_schedule
    caps = [channel.daily_cap, schedule[age] if 0 <= age < len(schedule) else None]
    present = [c for c in caps if c is not None]
    return min(present) if present else None


def _span(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _zone_name(tz: tzinfo) -> str:
    return str(getattr(tz, "key", None) or tz)
