"""Pace of one sending channel: rate, burst, humanized jitter, pauses, daily cap, and AIMD.

Pure: no clock, no I/O. Callers pass ``now`` (epoch seconds) and a random source.

The limiter is a GCRA token bucket: ``tat`` is the theoretical arrival time of the next send,
a send may go at ``tat - tolerance`` where ``tolerance = (burst - 1) * interval``, and each send
pushes ``tat`` one ``interval`` further. In any window of ``w`` seconds it allows at most
``burst + w * rate`` sends, so no 1 s window exceeds ``rate + burst``. Jitter and pauses only ever
push ``tat`` later, so they keep that bound. A new limiter starts with an **empty** bucket (the
first send waits one interval): when a channel moves to another replica, the old owner's last
second plus the new owner's first cannot add up to more than ``rate + burst``.

AIMD: a channel-wide rate-limit answer from the provider multiplies the pace by ``decrease``
(at most once per ``cooldown_s``, so a burst of rejections of concurrent sends counts once) and
holds every send for ``retry_after`` (or ``hold_s``); every ``recover_every_s`` without another
rate-limit answer the factor grows by ``increase`` back towards 1.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class PaceConfig:
    """A channel's configured pace (``rate`` sends/s) plus a safety ``headroom``.

    ``headroom`` (e.g. 0.01) makes the interval that much longer than ``1 / rate``, absorbing the
    few milliseconds of scheduling jitter between the grant and the request reaching the provider.
    """

    rate: float
    burst: int = 1
    jitter_min_s: float = 0.0
    jitter_max_s: float = 0.0
    pause_after_sends: int | None = None
    pause_min_s: float = 0.0
    pause_max_s: float = 0.0
    daily_cap: int | None = None
    timezone: str = "UTC"
    headroom: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.headroom < 0:
            raise ValueError("rate and burst must be positive, headroom not negative")


@dataclass(frozen=True, slots=True)
class AimdConfig:
    """How the pace reacts to provider rate limits and recovers."""

    decrease: float = 0.5
    min_factor: float = 0.1
    increase: float = 0.1
    recover_every_s: float = 2.0
    cooldown_s: float = 1.0
    hold_s: float = 1.0


def local_day(now: float, timezone: str) -> tuple[date, float]:
    """The channel's local date at ``now`` and the epoch second its next day starts."""
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now, zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
    return local.date(), midnight.timestamp()


class PaceLimiter:
    """When may the channel's next call go? ``next_at`` asks, ``take`` records a call;
    ``capped_until`` and ``count`` keep the daily cap (messages, not retries)."""

    def __init__(
        self,
        config: PaceConfig,
        *,
        now: float,
        rng: random.Random,
        aimd: AimdConfig | None = None,
        factor: float = 1.0,
    ) -> None:
        self.config = config
        self.aimd = aimd or AimdConfig()
        self.factor = min(1.0, max(self.aimd.min_factor, factor))
        self._rng = rng
        self._tat = now + self._tolerance() + self.interval  # empty bucket
        self._hold_until = -math.inf
        self._sent_in_block = 0
        self._last_limited = -math.inf
        self._last_increase = now
        self._day, self._day_ends = local_day(now, config.timezone)
        self._day_count = 0

    # -- reading ------------------------------------------------------------------------------
    @property
    def interval(self) -> float:
        """Seconds between sends at the current (possibly lowered) pace."""
        return (1.0 + self.config.headroom) / (self.config.rate * self.factor)

    @property
    def effective_rate(self) -> float:
        return 1.0 / self.interval

    @property
    def day(self) -> date:
        return self._day

    @property
    def day_count(self) -> int:
        return self._day_count

    def next_at(self, now: float, *, pending: int = 0) -> float:
        """Earliest epoch second the next provider call may start (``> now`` means wait),
        after ``pending`` calls already granted but not yet started (``take``)."""
        self._recover(now)
        block = self.config.pause_after_sends
        if block is not None and pending and self._sent_in_block + pending >= block:
            return math.inf  # the block's last call must start first: its pause follows
        return max(self._tat + pending * self.interval - self._tolerance(), self._hold_until)

    def capped_until(self, now: float) -> float | None:
        """When the daily cap is reached: the epoch second the channel's next day starts."""
        self._roll_day(now)
        cap = self.config.daily_cap
        return self._day_ends if cap is not None and self._day_count >= cap else None

    # -- writing ------------------------------------------------------------------------------
    def count(self, now: float) -> None:
        """One more message today (its first attempt; retries do not count)."""
        self._roll_day(now)
        self._day_count += 1

    def take(self, now: float) -> None:
        """Record a provider call starting at ``now`` (the caller waited until ``next_at``).

        A call a few milliseconds late (timer resolution) does not push the schedule: one at
        most ``slack`` after it was due counts as made when due, so the achieved rate stays at
        the pace. ``slack`` is at most the headroom (in seconds per second), which keeps every
        1 s window within ``rate + burst``. A call after an idle period starts a fresh schedule.
        """
        due = max(self._tat - self._tolerance(), self._hold_until)
        slack = min(self.interval, 0.005, self.config.headroom)
        on_time = due <= now <= due + slack
        self._tat = max(self._tat, due if on_time else now) + self.interval + self._jitter()
        block = self.config.pause_after_sends
        if block is not None:
            self._sent_in_block += 1
            if self._sent_in_block >= block:
                self._sent_in_block = 0
                pause = self._uniform(self.config.pause_min_s, self.config.pause_max_s)
                self._tat = max(self._tat, now + pause + self._tolerance())

    def rate_limited(self, now: float, retry_after: float | None = None) -> bool:
        """The provider said the channel sends too fast: hold, and lower the pace once per
        cooldown. Returns True when the factor was lowered."""
        hold = retry_after if retry_after is not None else self.aimd.hold_s
        self._hold_until = max(self._hold_until, now + hold)
        self._tat = max(self._tat, now + hold + self._tolerance())  # no burst after the hold
        lowered = now - self._last_limited >= self.aimd.cooldown_s
        if lowered:
            self.factor = max(self.aimd.min_factor, self.factor * self.aimd.decrease)
        self._last_limited = now
        return lowered

    def reconfigure(self, config: PaceConfig, now: float) -> None:
        """New settings take effect from the next send, without granting a burst."""
        if config.timezone != self.config.timezone:
            self._day, self._day_ends = local_day(now, config.timezone)
        self.config = config
        self._tat = max(self._tat, now + self._tolerance() + self.interval)

    def restore(self, *, day: date, count: int) -> None:
        """Sends already made today (persisted), so a restart or hand-over keeps the cap."""
        if day == self._day:
            self._day_count = max(self._day_count, count)

    # -- internals ----------------------------------------------------------------------------
    def _tolerance(self) -> float:
        return (self.config.burst - 1) * self.interval

    def _jitter(self) -> float:
        return self._uniform(self.config.jitter_min_s, self.config.jitter_max_s)

    def _uniform(self, low: float, high: float) -> float:
        return low if high <= low else self._rng.uniform(low, high)

    def _roll_day(self, now: float) -> None:
        if now >= self._day_ends:
            self._day, self._day_ends = local_day(now, self.config.timezone)
            self._day_count = 0

    def _recover(self, now: float) -> None:
        if self.factor >= 1.0:
            return
        since = max(self._last_limited, self._last_increase)
        steps = math.floor((now - since) / self.aimd.recover_every_s)
        if steps > 0:
            self.factor = min(1.0, self.factor + steps * self.aimd.increase)
            self._last_increase = since + steps * self.aimd.recover_every_s
