"""Process helpers shared by the embedded servers (internal)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

LOG_TAIL_LINES = 40


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, or an empty string when it can't be read."""
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def stop_process(
    proc: subprocess.Popen[bytes], steps: Sequence[tuple[signal.Signals, float]]
) -> int:
    """Send each signal in turn, waiting up to its timeout; SIGKILL last. Returns the exit code."""
    for sig, timeout in steps:
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = _proc_stat(pid)
    return state is None or state[0] != "Z"


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from /proc, or None when unknown."""
    state = _proc_stat(pid)
    return None if state is None else state[1]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def cmdline(pid: int) -> list[str]:
    """Arguments of ``pid`` from /proc (empty when unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [arg.decode("utf-8", "replace") for arg in raw.split(b"\0") if arg]


def write_owner_file(path: Path, child: int) -> None:
    """Record ``<child pid> <launcher pid>`` so a later launcher can find an orphaned child."""
    path.write_text(f"{child} {os.getpid()}\n")


def stop_orphan(owner_file: Path, marker: str, sig: signal.Signals, timeout: float) -> int | None:
    """Stop the child recorded in ``owner_file`` if it outlived its launcher.

    The child counts only while it runs with ``marker`` among its arguments (so a reused pid is
    left alone). A child whose launcher still is its parent is in use: its pid is returned and
    nothing is done. An orphan gets ``sig``, then SIGKILL after ``timeout``; None is returned.
    """
    try:
        child, launcher = map(int, owner_file.read_text().split())
    except (OSError, ValueError):
        return None
    if not is_alive(child) or marker not in cmdline(child):
        return None
    if parent_pid(child) == launcher:
        return child
    for step, wait in ((sig, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, step)
        deadline = time.monotonic() + wait
        while is_alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not is_alive(child):
            break
    return None
