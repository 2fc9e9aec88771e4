"""Counters for ``GET /_stats``: outcomes per number, the most acceptances in any 1 s, webhooks."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal[
    "accepted",
    "lost_response",
    "rate_limited",
    "pair_rate_limited",
    "storm_rate_limited",
    "server_error",
    "unauthorized",
    "invalid",
    "mark_read",
]


@dataclass
class NumberStats:
    """One number's counts; ``max_per_1s`` is the most acceptances in any sliding second."""

    outcomes: Counter[str] = field(default_factory=Counter)
    max_per_1s: int = 0
    _recent: deque[float] = field(default_factory=deque)

    def record(self, outcome: Outcome, now: float) -> None:
        self.outcomes[outcome] += 1
        if outcome in ("accepted", "lost_response"):
            recent = self._recent
            recent.append(now)
            while recent[0] <= now - 1.0:
                recent.popleft()
            self.max_per_1s = max(self.max_per_1s, len(recent))

    def as_dict(self) -> dict[str, Any]:
        return {**dict(sorted(self.outcomes.items())), "max_per_1s": self.max_per_1s}


@dataclass
class Stats:
    numbers: dict[str, NumberStats] = field(default_factory=dict)
    webhooks: Counter[str] = field(default_factory=Counter)

    def record(self, channel_id: str, outcome: Outcome, now: float) -> None:
        self.numbers.setdefault(channel_id, NumberStats()).record(outcome, now)

    def as_dict(self, *, webhooks_pending: int) -> dict[str, Any]:
        return {
            "numbers": {channel: s.as_dict() for channel, s in sorted(self.numbers.items())},
            "webhooks": {**dict(sorted(self.webhooks.items())), "pending": webhooks_pending},
        }
