"""CPU time of processes and process trees, from Linux ``/proc``.

``/proc/<pid>/stat`` gives a process's own user and system time (``utime``, ``stime``) and the time
of its children that exited and were waited for (``cutime``, ``cstime``). A tree's CPU is the root's
four fields plus, recursively, the trees of its live children: a child (say a PostgreSQL backend)
that exits between two readings moves from the live part into its parent's ``cutime``, so the
difference of two readings counts it exactly once. Processes of another user are readable too
(``/proc/<pid>/stat`` is world-readable), which is how PostgreSQL's backends are counted when the
server runs as its own user.

:class:`CpuMeter` reads named trees twice and reports per-name CPU seconds between the readings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

PROC: Final = Path("/proc")
_TICKS: Final = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None if it is gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the name, in parentheses, may hold spaces


def cpu_seconds(pid: int, *, proc: Path = PROC) -> float:
    """User + system CPU time of process ``pid`` itself so far; 0 if it cannot be read."""
    fields = _stat_fields(pid, proc)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int, *, proc: Path = PROC) -> list[int]:
    """The live children of ``pid`` (every thread's ``children`` list)."""
    found: list[int] = []
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def tree_cpu_seconds(pid: int, *, proc: Path = PROC) -> float:
    """CPU time of ``pid``, of its waited-for children, and of its live descendants so far."""
    fields = _stat_fields(pid, proc)
    if fields is None:
        return 0.0
    own = sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICKS
    return own + sum(tree_cpu_seconds(child, proc=proc) for child in children(pid, proc=proc))


@dataclass
class CpuMeter:
    """CPU seconds used by named processes between :meth:`start` and :meth:`stop`.

    ``trees`` maps a name to root pids whose whole trees count (a name may cover several trees,
    e.g. two replicas); ``processes`` maps a name to pids counted alone, without their children
    (the benchmark's own process, whose children are the servers it started).
    """

    trees: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    processes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    proc: Path = PROC
    _started: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if both := set(self.trees) & set(self.processes):
            raise ValueError(f"names given twice: {sorted(both)}")

    def read(self) -> dict[str, float]:
        """CPU seconds per name so far."""
        used = {
            name: sum(tree_cpu_seconds(pid, proc=self.proc) for pid in pids)
            for name, pids in self.trees.items()
        }
        used.update(
            (name, sum(cpu_seconds(pid, proc=self.proc) for pid in pids))
            for name, pids in self.processes.items()
        )
        return used

    def start(self) -> None:
        self._started = self.read()

    def stop(self) -> dict[str, float]:
        """CPU seconds per name since :meth:`start`."""
        ended = self.read()
        return {name: ended[name] - self._started[name] for name in ended}
