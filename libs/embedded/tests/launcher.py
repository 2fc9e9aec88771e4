"""Simulates ``make run`` killed with SIGKILL: its server outlives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def orphan_of_killed_launcher(code: str, path: Path) -> int:
    """Run ``code`` (which starts a server on ``path`` and prints its pid) in a new Python,
    SIGKILL that Python, and return the pid of the server it left behind."""
    with subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    ) as launcher:
        assert launcher.stdout is not None
        pid = int(launcher.stdout.readline())
        launcher.kill()
    return pid
