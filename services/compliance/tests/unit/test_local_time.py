"""Quiet hours and local days in real time zones, DST gaps and folds included."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from zapflow.compliance.domain.local_time import (
    in_quiet_hours,
    local_date,
    next_local_midnight,
    quiet_until,
    resolve_local,
    zone,
)

NEW_YORK = ZoneInfo("America/New_York")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")


@pytest.mark.parametrize(
    ("at", "start", "end", "quiet"),
    [
        (time(12), time(11), time(13), True),
        (time(13), time(11), time(13), False),  # the end is allowed
        (time(11), time(11), time(13), True),
        (time(23), time(22), time(7), True),
        (time(3), time(22), time(7), True),
        (time(7), time(22), time(7), False),
        (time(12), time(22), time(7), False),
        (time(12), time(9), time(9), False),  # start == end: no quiet hours
    ],
)
def test_quiet_hours_are_a_half_open_wall_clock_interval(
    at: time, start: time, end: time, quiet: bool
) -> None:
    assert in_quiet_hours(at, start, end) is quiet


def test_outside_quiet_hours_there_is_nothing_to_wait_for() -> None:
    assert quiet_until(datetime(2025, 1, 1, 12, tzinfo=UTC), time(22), time(7), UTC) is None


def test_after_midnight_the_night_ends_the_same_day_before_it_the_next() -> None:
    before = datetime(2025, 1, 1, 23, tzinfo=UTC)
    after = datetime(2025, 1, 2, 1, tzinfo=UTC)
    assert quiet_until(before, time(22), time(7), UTC) == datetime(2025, 1, 2, 7, tzinfo=UTC)
    assert quiet_until(after, time(22), time(7), UTC) == datetime(2025, 1, 2, 7, tzinfo=UTC)


def test_an_end_skipped_by_spring_forward_is_the_instant_the_clocks_jump() -> None:
    # 2024-03-10 in New York: 02:00 EST jumps to 03:00 EDT, so 02:30 never happens
    now = datetime(2024, 3, 10, 6, 0, tzinfo=UTC)  # 01:00 EST
    until = quiet_until(now, time(22), time(2, 30), NEW_YORK)
    assert until == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert until is not None
    assert not in_quiet_hours(until.astimezone(NEW_YORK).time(), time(22), time(2, 30))


def test_an_end_repeated_by_fall_back_is_its_first_occurrence() -> None:
    # 2024-11-03 in New York: 01:00-02:00 happens twice (EDT, then EST)
    now = datetime(2024, 11, 3, 3, 0, tzinfo=UTC)  # 23:00 EDT on the 2nd
    until = quiet_until(now, time(22), time(1, 30), NEW_YORK)
    assert until == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # 01:30 EDT


def test_a_local_day_that_starts_at_one_oclock_starts_then() -> None:
    # 2018-11-04 in São Paulo: DST began at midnight, clocks went 00:00 -> 01:00
    now = datetime(2018, 11, 3, 15, 0, tzinfo=UTC)
    assert next_local_midnight(now, SAO_PAULO) == datetime(2018, 11, 4, 3, 0, tzinfo=UTC)
    assert resolve_local(date(2018, 11, 4), time(0, 30), SAO_PAULO) == datetime(
        2018, 11, 4, 3, 0, tzinfo=UTC
    )


def test_ordinary_local_times_resolve_with_their_offset() -> None:
    assert resolve_local(date(2025, 6, 10), time(8), SAO_PAULO) == datetime(
        2025, 6, 10, 11, tzinfo=UTC
    )
    assert next_local_midnight(datetime(2025, 6, 10, 2, 59, tzinfo=UTC), SAO_PAULO) == datetime(
        2025, 6, 10, 3, 0, tzinfo=UTC
    )


def test_the_local_date_depends_on_the_zone() -> None:
    instant = datetime(2025, 6, 10, 2, 0, tzinfo=UTC)
    assert local_date(instant, UTC) == date(2025, 6, 10)
    assert local_date(instant, SAO_PAULO) == date(2025, 6, 9)


def test_unknown_or_missing_zones_fall_back_to_utc() -> None:
    assert zone(None) is UTC
    assert zone("Mars/Olympus_Mons") is UTC
    assert zone("America/Sao_Paulo") == SAO_PAULO
