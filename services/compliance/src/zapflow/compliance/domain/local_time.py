"""Wall-clock arithmetic in a channel's time zone: quiet hours, local days, DST gaps.

Quiet hours are a wall-clock interval ``[start, end)``; ``start > end`` crosses midnight and
``start == end`` means none. The next allowed instant is the first one whose local wall time is
``end``: when DST skips that time (a gap), it is the instant the clocks jump; when DST repeats it
(a fold), the first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=256)
def zone(name: str | None) -> tzinfo:
    """The IANA zone ``name``; UTC when unset or unknown (a bad zone must not block sending)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """True when the wall time ``local`` falls in ``[start, end)``."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _wall(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def resolve_local(day: date, at: time, tz: tzinfo) -> datetime:
    """The first UTC instant whose wall time in ``tz`` is ``day at`` (or the gap's end)."""
    naive = datetime.combine(day, at)
    earliest = min(naive.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1))
    latest = max(naive.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1))
    if _wall(earliest, tz) == naive:
        return earliest
    # ``naive`` lies in a gap: the jump happens in (earliest, latest]; find it to the second.
    low, high = earliest, latest
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if _wall(mid, tz) >= naive:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0)


def quiet_until(now: datetime, start: time, end: time, tz: tzinfo) -> datetime | None:
    """When quiet hours that hold at ``now`` end (UTC), or None when ``now`` is not quiet."""
    local = now.astimezone(tz)
    if not in_quiet_hours(local.time().replace(tzinfo=None), start, end):
        return None
    ends_today = start < end or local.time() < end
    day = local.date() if ends_today else local.date() + timedelta(days=1)
    return resolve_local(day, end, tz)


def next_local_midnight(now: datetime, tz: tzinfo) -> datetime:
    """The instant the next local day starts in ``tz`` (UTC)."""
    return resolve_local(now.astimezone(tz).date() + timedelta(days=1), time(0), tz)


def local_date(instant: datetime, tz: tzinfo) -> date:
    return instant.astimezone(tz).date()
