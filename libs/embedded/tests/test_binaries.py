from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from zapflow.embedded import find_nats_server_binary, find_postgres_bindir


def test_the_pinned_nats_server_from_the_wheel_wins() -> None:
    binary = find_nats_server_binary()

    assert binary == Path(sys.executable).parent / "nats-server"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert "v2.15." in version.stdout


def test_postgres_bindir_holds_the_server_binaries() -> None:
    bindir = find_postgres_bindir()

    assert (bindir / "initdb").is_file()
    assert (bindir / "postgres").is_file()
