"""The pace limiter with a fake clock: rate, burst, jitter, pauses, daily cap, AIMD."""

import itertools
import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapflow.sender.domain import AimdConfig, PaceConfig, PaceLimiter, local_day

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def run(limiter: PaceLimiter, start: float, until: float) -> list[float]:
    """Send new messages as fast as the limiter allows from ``start`` to ``until``."""
    now, sent = start, []
    while True:
        now = max(now, limiter.next_at(now), limiter.capped_until(now) or now)
        if now >= until:
            return sent
        if limiter.capped_until(now) is not None:
            continue
        limiter.count(now)
        limiter.take(now)
        sent.append(now)


def max_in_window(times: list[float], width: float = 1.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def limiter(config: PaceConfig, now: float = T0, seed: int = 1, **kw: object) -> PaceLimiter:
    return PaceLimiter(config, now=now, rng=random.Random(seed), **kw)  # type: ignore[arg-type]


def test_starts_with_an_empty_bucket_then_keeps_the_rate() -> None:
    pace = limiter(PaceConfig(rate=10, burst=5))
    assert pace.next_at(T0) > T0  # no burst right after (re)start
    sent = run(pace, T0, T0 + 10)
    assert 99 <= len(sent) <= 100 + 5
    assert max_in_window(sent) <= 10 + 5


def test_a_burst_is_available_after_idling_and_never_exceeds_rate_plus_burst() -> None:
    pace = limiter(PaceConfig(rate=10, burst=5))
    idle_until = T0 + 5
    sent = run(pace, idle_until, idle_until + 3)
    assert sent[:5] == [idle_until] * 5  # the burst
    assert max_in_window(sent) <= 15


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.5, 200),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 0.3), min_size=50, max_size=300),
)
def test_no_window_exceeds_rate_plus_burst_whatever_the_arrivals(
    rate: float, burst: int, gaps: list[float]
) -> None:
    pace = limiter(PaceConfig(rate=rate, burst=burst))
    now, sent = T0, []
    for gap in gaps:
        now = max(now + gap, pace.next_at(now + gap))
        pace.take(now)
        sent.append(now)
    assert max_in_window(sent) <= rate + burst


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(1, 500),
    burst=st.integers(1, 20),
    lateness=st.lists(st.floats(0, 0.02), min_size=100, max_size=400),
)
def test_late_grants_keep_every_window_within_rate_plus_burst(
    rate: float, burst: int, lateness: list[float]
) -> None:
    pace = limiter(PaceConfig(rate=rate, burst=burst, headroom=0.01))
    now, sent = T0, []
    for late in lateness:
        now = pace.next_at(now) + late
        pace.take(now)
        sent.append(now)
    assert max_in_window(sent) <= rate + burst


def test_late_grants_within_timer_slack_do_not_lower_the_achieved_rate() -> None:
    pace = limiter(PaceConfig(rate=80, burst=1, headroom=0.01))
    now, sent = T0, []
    while now < T0 + 10:
        now = pace.next_at(now) + 0.002  # every wake-up 2 ms late
        pace.take(now)
        sent.append(now)
    assert len(sent) >= 0.985 * 80 * 10


def test_headroom_lowers_the_interval_a_little() -> None:
    pace = limiter(PaceConfig(rate=100, headroom=0.01))
    assert pace.interval == pytest.approx(0.0101)


def test_jitter_spreads_sends_between_its_bounds() -> None:
    pace = limiter(PaceConfig(rate=10, jitter_min_s=0.5, jitter_max_s=1.5))
    sent = run(pace, T0, T0 + 120)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.1 + 0.5 - 1e-9
    assert max(gaps) <= 0.1 + 1.5 + 1e-9
    assert len({round(g, 6) for g in gaps}) > len(gaps) / 2  # humanized: not periodic


def test_pauses_after_each_block_of_sends() -> None:
    pace = limiter(PaceConfig(rate=10, pause_after_sends=5, pause_min_s=30, pause_max_s=60))
    sent = run(pace, T0, T0 + 200)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    long_gaps = [i for i, g in enumerate(gaps) if g >= 30]
    assert long_gaps[:3] == [4, 9, 14]  # after every 5th send
    assert all(30 <= gaps[i] <= 60.2 for i in long_gaps)
    assert all(g < 1 for i, g in enumerate(gaps) if i not in long_gaps)


def test_daily_cap_waits_for_the_next_local_day() -> None:
    config = PaceConfig(rate=100, daily_cap=3, timezone="America/Sao_Paulo")
    pace = limiter(config)
    sent = run(pace, T0, T0 + 60)
    assert len(sent) == 3
    day, next_day = local_day(T0, "America/Sao_Paulo")
    assert day == date(2023, 11, 14)
    assert pace.capped_until(T0 + 60) == next_day
    assert len(run(pace, next_day, next_day + 1)) == 3  # a new day, a new allowance


def test_restored_count_keeps_the_cap_across_a_hand_over() -> None:
    pace = limiter(PaceConfig(rate=100, daily_cap=10))
    pace.restore(day=pace.day, count=8)
    assert len(run(pace, T0, T0 + 30)) == 2
    other_day = limiter(PaceConfig(rate=100, daily_cap=10))
    other_day.restore(day=date(2000, 1, 1), count=8)  # yesterday's count does not count
    assert len(run(other_day, T0, T0 + 30)) == 10


def test_only_counted_messages_use_up_the_daily_cap() -> None:
    pace = limiter(PaceConfig(rate=100, daily_cap=2))
    now = pace.next_at(T0)
    pace.count(now)
    pace.take(now)
    pace.take(pace.next_at(now))  # a retry: a call, not a new message
    assert pace.day_count == 1
    assert pace.capped_until(now) is None


def test_rate_limit_holds_the_channel_and_halves_the_pace_once_per_cooldown() -> None:
    aimd = AimdConfig(decrease=0.5, cooldown_s=1.0, recover_every_s=2.0, increase=0.1)
    pace = limiter(PaceConfig(rate=80, burst=10), aimd=aimd)
    run(pace, T0, T0 + 2)
    assert pace.rate_limited(T0 + 2, retry_after=None)
    assert not pace.rate_limited(T0 + 2.1, retry_after=None)  # same storm, in-flight answers
    assert pace.factor == 0.5
    assert pace.next_at(T0 + 2.1) >= T0 + 2 + aimd.hold_s
    assert pace.rate_limited(T0 + 3.5, retry_after=3.0)
    assert pace.factor == 0.25
    assert pace.next_at(T0 + 3.5) >= T0 + 6.5


def test_pace_recovers_additively_after_quiet_periods() -> None:
    aimd = AimdConfig(decrease=0.5, min_factor=0.1, increase=0.1, recover_every_s=2.0)
    pace = limiter(PaceConfig(rate=80), aimd=aimd)
    for i in range(6):
        pace.rate_limited(T0 + i * 1.0)
    assert pace.factor == pytest.approx(0.1)  # floor
    pace.next_at(T0 + 5 + 3.9)
    assert pace.factor == pytest.approx(0.2)
    pace.next_at(T0 + 5 + 30)
    assert pace.factor == 1.0


def test_lowered_pace_is_what_the_channel_achieves() -> None:
    pace = limiter(PaceConfig(rate=80, burst=1), aimd=AimdConfig(recover_every_s=1000))
    pace.rate_limited(T0, retry_after=0.5)
    sent = run(pace, T0, T0 + 10.5)
    assert 39 * 10 <= len(sent) <= 40 * 10 + 1


def test_reconfigure_applies_the_new_rate_without_a_burst() -> None:
    pace = limiter(PaceConfig(rate=10, burst=10))
    pace.reconfigure(PaceConfig(rate=100, burst=10), T0 + 5)
    assert pace.next_at(T0 + 5) > T0 + 5
    sent = run(pace, T0 + 5, T0 + 15)
    assert max_in_window(sent) <= 110
    assert len(sent) >= 990


def test_restored_factor_is_clamped() -> None:
    assert limiter(PaceConfig(rate=10), factor=0.0).factor == AimdConfig().min_factor
    assert limiter(PaceConfig(rate=10), factor=3).factor == 1.0


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        PaceConfig(rate=0)
