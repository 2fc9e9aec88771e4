"""Admission limits, pure and clock-driven: token buckets, keyed buckets and storm periods.

Times are seconds from a monotonic clock the caller passes in, so tests step time by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zapflow.simulator.config import RateLimitConfig, StormConfig


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; starts full.

    In any window of ``w`` seconds it lets at most ``burst + rate * w`` requests through.
    """

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now if self.updated is None else max(self.updated, now)

    def try_take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class KeyedBuckets:
    """One :class:`TokenBucket` per key (e.g. per recipient); idle full buckets are dropped."""

    def __init__(self, config: RateLimitConfig, *, sweep_every: int = 10_000) -> None:
        self._config = config
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_every = sweep_every
        self._since_sweep = 0

    def try_take(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._config.rate, self._config.burst)
        self._since_sweep += 1
        if self._since_sweep >= self._sweep_every:
            self._sweep(now)
        return bucket.try_take(now)

    def _sweep(self, now: float) -> None:
        self._since_sweep = 0
        idle = [key for key, bucket in self._buckets.items() if bucket.is_full(now)]
        for key in idle:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


class StormSchedule:
    """Whether a 130429 storm is on: configured periods plus on-demand ones (``start``)."""

    def __init__(self, config: StormConfig | None, started_at: float) -> None:
        self._config = config
        self._started_at = started_at
        self._until: float = float("-inf")

    def start(self, now: float, seconds: float) -> None:
        """Storm from ``now`` for ``seconds`` (extends a running one)."""
        self._until = max(self._until, now + seconds)

    def active(self, now: float) -> bool:
        if now < self._until:
            return True
        config = self._config
        if config is None:
            return False
        elapsed = now - self._started_at - config.start_after_s
        if elapsed < 0:
            return False
        if config.every_s is None:
            return elapsed < config.duration_s
        return elapsed % config.every_s < config.duration_s
