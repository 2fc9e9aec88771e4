"""Per-channel webhook flood limit: one token bucket per channel, in memory, per process.

A flood (a misconfigured provider retry loop, someone replaying a captured webhook) should cost
one dictionary lookup and a 429, not a JetStream publish each. Limits are per gateway replica;
a provider spreading a flood across replicas gets ``replicas x rate``, which is fine for a
safety valve. Providers retry 429 answers, so nothing is lost.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

_ONE: Final = 1.0 - 1e-9
"""A whole token, give or take floating-point error in the refill arithmetic."""


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each request takes one."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def wait(self) -> float:
        """0.0 if a token is available now (none is taken), else the seconds until one is."""
        tokens = min(self.burst, self._tokens + (self._clock() - self._last) * self.rate)
        return 0.0 if tokens >= _ONE else (1.0 - tokens) / self.rate

    def take(self) -> float:
        """0.0 if a token was taken, else the seconds until one will be available."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= _ONE:
            self._tokens = max(0.0, tokens - 1.0)
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / self.rate


class FloodGuard:
    """One :class:`TokenBucket` per key (channel id), created on first use."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> float:
        """0.0 if allowed, else the seconds to wait (for ``Retry-After``)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._clock)
        return bucket.take()

    def forget(self, key: str) -> None:
        """Drop a key's bucket (its channel was disabled or removed)."""
        self._buckets.pop(key, None)


class KeyedBuckets:
    """One :class:`TokenBucket` per key, created on first use. At most ``max_keys`` are kept:
    the least recently used is dropped first, so memory stays bounded whatever keys come."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._max = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def wait(self, key: str) -> float:
        """0.0 if ``key`` has a token, else the seconds until it will; takes nothing."""
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait()

    def take(self, key: str) -> float:
        """Take a token of ``key`` (see :meth:`TokenBucket.take`)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, self._clock)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take()

    def __len__(self) -> int:
        return len(self._buckets)


class FailureGuard(KeyedBuckets):
    """Per-source limit on *failed* webhook requests (bad signature or token, unknown channel).

    Authenticated deliveries never touch it, so junk sent for a channel id cannot take that
    channel's flood budget (:class:`FloodGuard`, taken only after authentication). A source
    (the client address) whose failures used up its bucket is answered 429 before its body is
    read or verified, which bounds the unauthenticated work one source can cause.
    """

    def blocked(self, source: str) -> float:
        """0.0 if ``source`` may be served, else the seconds until its next failure is allowed."""
        return self.wait(source)

    def failed(self, source: str) -> None:
        """Count one failure of ``source``."""
        self.take(source)
