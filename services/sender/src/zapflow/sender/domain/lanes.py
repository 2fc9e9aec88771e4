"""Per-recipient order: one lane per (tenant, channel, recipient), worked head first.

Pure: plain keys and items. A lane holds the messages to one recipient sorted by their stream
sequence; only its head is worked on, and the next one starts when the head reached a final
outcome (``pop``). Different lanes run concurrently, which is how one channel keeps its full pace
while every conversation stays in order.

A message that arrives with a lower sequence than one already queued (a redelivery overtaking
nothing yet sent) is put back in sequence order; it can never jump ahead of the head that is
being worked on, since that one may be at the provider already.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass
class _Lane(Generic[T]):
    seqs: list[int] = field(default_factory=list)
    items: list[T] = field(default_factory=list)


class Lanes(Generic[K, T]):
    """Queues of items per key, each ordered by sequence, worked one head at a time."""

    def __init__(self) -> None:
        self._lanes: dict[K, _Lane[T]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: object) -> bool:
        return key in self._lanes

    def push(self, key: K, seq: int, item: T) -> bool:
        """Queue ``item``; True when it is the head of a lane that was empty (start working it).

        Returns False for a sequence already queued in that lane (a duplicate delivery).
        """
        lane = self._lanes.get(key)
        if lane is None:
            self._lanes[key] = _Lane([seq], [item])
            self._size += 1
            return True
        if seq in lane.seqs:
            return False
        index = bisect.bisect_left(lane.seqs, seq, lo=1)  # never before the head
        lane.seqs.insert(index, seq)
        lane.items.insert(index, item)
        self._size += 1
        return False

    def head(self, key: K) -> T | None:
        lane = self._lanes.get(key)
        return lane.items[0] if lane else None

    def pop(self, key: K) -> T | None:
        """Drop the head (it reached its outcome); returns the new head, or None if empty."""
        lane = self._lanes[key]
        lane.seqs.pop(0)
        lane.items.pop(0)
        self._size -= 1
        if not lane.items:
            del self._lanes[key]
            return None
        return lane.items[0]

    def items(self) -> Iterator[T]:
        """Every queued item, heads included (for keep-alives)."""
        for lane in self._lanes.values():
            yield from lane.items

    def lane_length(self, key: K) -> int:
        lane = self._lanes.get(key)
        return len(lane.items) if lane else 0
