"""Compare what Zapflow asked to send with what the provider accepted, per channel. Pure.

``expected`` lists Zapflow's send requests in request order (the order of ``send.requested`` in
its stream), each with the outcome Zapflow recorded; ``accepted`` lists the provider's audit
records in acceptance order. A record belongs to a request through
``biz_opaque_callback_data`` (the sender puts Zapflow's message id there), else through the
provider message id Zapflow recorded as sent (``SendSucceeded.provider_message_id``).

Per channel:

* **lost**: requested, not vetoed nor failed, never accepted; ``lost_after_sent`` counts those
  Zapflow nevertheless recorded as sent (the worst case: it believes a send that never happened).
* **duplicated**: extra acceptances of one message id (accepted three times = 2 duplicates).
* **out_of_order**: per (channel, recipient), messages accepted out of request order: how many
  must be removed so the rest are in order (length minus the longest increasing run).
* **max_per_window**: most acceptances on the channel's number in any window of ``window_s``,
  against ``floor(rate * window_s + burst)`` when the channel's pace is known.
* **unmatched**: accepted records that belong to no request (other runs, or duplicates of a
  message whose id is only known through the provider id).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from zapflow.simulator.auditlog import AuditRecord

Outcome = Literal["pending", "sent", "failed", "vetoed"]
SAMPLE = 20


@dataclass(frozen=True, slots=True)
class ExpectedSend:
    """One send Zapflow requested (``recipient``: the address messages are ordered by)."""

    message_id: str
    channel_id: str
    recipient: str
    outcome: Outcome = "pending"
    provider_message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pace:
    """A channel's configured pace."""

    rate_per_second: float
    burst: int

    def allowed(self, window_s: float) -> int:
        """Most sends a token bucket lets through in any window of ``window_s``."""
        return math.floor(self.rate_per_second * window_s + self.burst + 1e-9)


@dataclass(frozen=True)
class ChannelAudit:
    channel_id: str
    requested: int = 0
    recorded_sent: int = 0
    settled_unsent: int = 0  # vetoed or failed, never accepted: fine
    accepted: int = 0
    lost: int = 0
    lost_after_sent: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unmatched: int = 0
    max_per_window: int = 0
    pace_limit: int | None = None
    lost_ids: tuple[str, ...] = field(default=(), repr=False)
    duplicated_ids: tuple[str, ...] = field(default=(), repr=False)
    out_of_order_ids: tuple[str, ...] = field(default=(), repr=False)

    @property
    def over_pace(self) -> bool:
        return self.pace_limit is not None and self.max_per_window > self.pace_limit

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated or out of order (pace is reported apart)."""
        return not (self.lost or self.duplicated or self.out_of_order)


@dataclass(frozen=True)
class AuditReport:
    channels: tuple[ChannelAudit, ...]
    window_s: float = 1.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.channels)

    @property
    def over_pace(self) -> bool:
        return any(c.over_pace for c in self.channels)

    def channel(self, channel_id: str) -> ChannelAudit:
        return next(c for c in self.channels if c.channel_id == channel_id)


def audit(
    expected: Sequence[ExpectedSend],
    accepted: Sequence[AuditRecord],
    *,
    paces: Mapping[str, Pace] | None = None,
    window_s: float = 1.0,
) -> AuditReport:
    """The report per channel (every channel seen on either side), sorted by channel id."""
    requests = _first_requests(expected)
    acceptances, unmatched = _match(requests, accepted)
    channels = sorted({e.channel_id for e in requests.values()} | {r.channel_id for r in accepted})
    by_channel = [
        _channel(
            channel_id,
            [e for e in requests.values() if e.channel_id == channel_id],
            acceptances,
            [r for r in accepted if r.channel_id == channel_id],
            unmatched[channel_id],
            (paces or {}).get(channel_id),
            window_s,
        )
        for channel_id in channels
    ]
    return AuditReport(tuple(by_channel), window_s)


def _first_requests(expected: Iterable[ExpectedSend]) -> dict[str, ExpectedSend]:
    """Requests by message id, in request order; a repeated request keeps its first place."""
    requests: dict[str, ExpectedSend] = {}
    for item in expected:
        requests.setdefault(item.message_id, item)
    return requests


def _match(
    requests: Mapping[str, ExpectedSend], accepted: Iterable[AuditRecord]
) -> tuple[dict[str, list[int]], Counter[str]]:
    """Acceptance positions per message id, and unmatched record counts per channel."""
    by_provider_id = {
        e.provider_message_id: e.message_id for e in requests.values() if e.provider_message_id
    }
    positions: dict[str, list[int]] = defaultdict(list)
    unmatched: Counter[str] = Counter()
    for position, record in enumerate(accepted):
        opaque = record.biz_opaque_callback_data
        message_id = opaque if opaque in requests else by_provider_id.get(record.wamid)
        if message_id is None:
            unmatched[record.channel_id] += 1
        else:
            positions[message_id].append(position)
    return dict(positions), unmatched


def _channel(
    channel_id: str,
    requests: list[ExpectedSend],
    acceptances: Mapping[str, list[int]],
    records: list[AuditRecord],
    unmatched: int,
    pace: Pace | None,
    window_s: float,
) -> ChannelAudit:
    never = [e for e in requests if e.message_id not in acceptances]
    lost = [e for e in never if e.outcome in ("pending", "sent")]
    duplicated = {e.message_id: len(acceptances.get(e.message_id, ())) - 1 for e in requests}
    duplicated = {k: v for k, v in duplicated.items() if v > 0}
    disordered = out_of_order(requests, acceptances)
    return ChannelAudit(
        channel_id=channel_id,
        requested=len(requests),
        recorded_sent=sum(e.outcome == "sent" for e in requests),
        settled_unsent=len(never) - len(lost),
        accepted=sum(e.message_id in acceptances for e in requests),
        lost=len(lost),
        lost_after_sent=sum(e.outcome == "sent" for e in lost),
        duplicated=sum(duplicated.values()),
        out_of_order=len(disordered),
        unmatched=unmatched,
        max_per_window=max_in_window([r.ts for r in records], window_s),
        pace_limit=pace.allowed(window_s) if pace is not None else None,
        lost_ids=tuple(e.message_id for e in lost[:SAMPLE]),
        duplicated_ids=tuple(list(duplicated)[:SAMPLE]),
        out_of_order_ids=tuple(disordered[:SAMPLE]),
    )


def out_of_order(
    requests: Sequence[ExpectedSend], acceptances: Mapping[str, list[int]]
) -> list[str]:
    """Message ids accepted out of request order, per recipient (first acceptance counts)."""
    rank = {e.message_id: i for i, e in enumerate(requests)}
    by_recipient: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for e in requests:
        if e.message_id in acceptances:
            by_recipient[e.recipient].append((acceptances[e.message_id][0], e.message_id))
    disordered: list[str] = []
    for accepted in by_recipient.values():
        ids = [message_id for _, message_id in sorted(accepted)]
        keep = set(_longest_increasing([rank[i] for i in ids]))
        disordered.extend(i for i in ids if rank[i] not in keep)
    return disordered


def _longest_increasing(values: Sequence[int]) -> list[int]:
    """One longest strictly increasing subsequence of ``values`` (patience sorting)."""
    tails: list[int] = []
    tail_at: list[int] = []
    parent = [-1] * len(values)
    for i, value in enumerate(values):
        slot = bisect_left(tails, value)
        if slot == len(tails):
            tails.append(value)
            tail_at.append(i)
        else:
            tails[slot] = value
            tail_at[slot] = i
        parent[i] = tail_at[slot - 1] if slot else -1
    run: list[int] = []
    i = tail_at[-1] if tail_at else -1
    while i != -1:
        run.append(values[i])
        i = parent[i]
    return run[::-1]


def max_in_window(times: Iterable[datetime], window_s: float = 1.0) -> int:
    """Most of ``times`` inside any half-open window ``[t, t + window_s)``."""
    window: deque[float] = deque()
    best = 0
    for t in sorted(x.timestamp() for x in times):
        window.append(t)
        while window[0] <= t - window_s:
            window.popleft()
        best = max(best, len(window))
    return best
