"""Scratch directories for throwaway server data (test clusters, JetStream stores).

They are made on ``/dev/shm`` when it is a roomy tmpfs (initdb and ``CREATE DATABASE`` run
several times faster there than on a slow VM disk), else in the usual temp directory; an explicit
``$TMPDIR`` always wins. They are world-traversable (0755) because, as root, postgres runs as an
unprivileged user who must be able to reach its data directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SHM = Path("/dev/shm")
_MIN_SHM_FREE = 2 * 1024**3


def scratch_root() -> Path | None:
    """Where scratch directories go (None: ``tempfile``'s default)."""
    if os.environ.get("TMPDIR"):
        return None
    try:
        usage = shutil.disk_usage(_SHM)
    except OSError:
        return None
    return _SHM if usage.free >= _MIN_SHM_FREE and os.access(_SHM, os.W_OK) else None


def make_scratch_dir(prefix: str = "zapflow-test-") -> Path:
    """A new, empty, world-traversable directory; the caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root()))
    path.chmod(0o755)
    return path
