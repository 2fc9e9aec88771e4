"""CPU accounting from ``/proc``: a fake ``/proc`` for the arithmetic, the real one for a pid."""

import os
import time
from pathlib import Path

import pytest

from bench.cpu import CpuMeter, children, cpu_seconds, tree_cpu_seconds

TICK = os.sysconf("SC_CLK_TCK")


def _process(
    proc: Path, pid: int, ticks: tuple[int, int, int, int], kids: tuple[int, ...] = ()
) -> None:
    """``/proc/<pid>/stat`` with utime, stime, cutime, cstime in ticks, and its children."""
    utime, stime, cutime, cstime = ticks
    # fields after "(name)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime cutime cstime ...
    rest = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0"]
    stat = f"{pid} (a (weird) name) " + " ".join([*rest, *map(str, ticks), "20", "0"])
    (proc / str(pid) / "task" / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "stat").write_text(stat + "\n")
    (proc / str(pid) / "task" / str(pid) / "children").write_text(" ".join(map(str, kids)))
    assert (utime, stime, cutime, cstime) == ticks


def test_a_tree_counts_itself_its_waited_children_and_its_live_descendants(tmp_path: Path) -> None:
    _process(tmp_path, 10, (100, 50, 30, 20), kids=(11, 12))  # 50 ticks of exited children
    _process(tmp_path, 11, (7, 3, 0, 0), kids=(13,))
    _process(tmp_path, 12, (1, 1, 0, 0))
    _process(tmp_path, 13, (4, 0, 0, 0))

    assert cpu_seconds(10, proc=tmp_path) == 150 / TICK
    assert sorted(children(10, proc=tmp_path)) == [11, 12]
    assert tree_cpu_seconds(10, proc=tmp_path) == (150 + 50 + 10 + 2 + 4) / TICK


def test_a_gone_process_counts_nothing(tmp_path: Path) -> None:
    assert tree_cpu_seconds(99, proc=tmp_path) == cpu_seconds(99, proc=tmp_path) == 0.0


def test_meter_counts_trees_whole_and_processes_alone(tmp_path: Path) -> None:
    _process(tmp_path, 20, (10, 0, 0, 0), kids=(21,))
    _process(tmp_path, 21, (5, 0, 0, 0))
    meter = CpuMeter(trees={"tree": (20,)}, processes={"alone": (20,)}, proc=tmp_path)
    meter.start()
    (tmp_path / "21" / "stat").unlink()  # the child exits, its time moves to the parent's cutime
    (tmp_path / "20" / "stat").write_text(
        "20 (x) S 1 1 1 0 -1 0 0 0 0 0 12 0 25 0 20 0\n"  # utime 12, cutime 25 (5 + 20 more)
    )

    used = meter.stop()

    assert used == pytest.approx({"tree": (37 - 15) / TICK, "alone": 2 / TICK})


def test_real_proc_sees_this_process_spend_cpu() -> None:
    meter = CpuMeter(processes={"me": (os.getpid(),)})
    meter.start()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass

    assert meter.stop()["me"] >= 0.03
