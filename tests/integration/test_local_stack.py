"""`zapflow up` brings the six services to ready; `zapflow status` sees them; Ctrl-C stops all."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zapflow.contracts.streams import ALL_STREAMS
from zapflow.contracts.types import SERVICES
from zapflow.embedded import free_port
from zapflow.testing.types import DatabaseFactory

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def test_up_starts_every_service_and_status_reports_them_then_sigint_stops_all(
    nats_url: str, fresh_db: DatabaseFactory, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": fresh_db("stack"),
        "ZF_HOME": str(tmp_path / "home"),
        "ZF_LOG_FORMAT": "json",
    }
    for service in SERVICES:
        env[f"ZF_{service.upper()}_HTTP_PORT"] = str(free_port())
    up = subprocess.Popen(
        [BIN / "zapflow", "up", "--ready-timeout", "30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "services ready in" in line:
                break
        assert any(f"all {len(SERVICES)} services ready" in line for line in lines), "".join(lines)

        status = subprocess.run(
            [BIN / "zapflow", "status"], env=env, capture_output=True, text=True, timeout=30
        )
        assert status.returncode == 0, status.stdout + status.stderr
        for service in SERVICES:
            assert f"{service}" in status.stdout
        assert status.stdout.count(" ready") >= len(SERVICES)
        for stream in ALL_STREAMS:
            assert stream.name in status.stdout
        assert "ingest-raw" in status.stdout
    finally:
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=40)
    assert up.returncode == 0, "".join(lines) + rest
    for service in SERVICES:
        assert f"{service} exited with code 0" in rest, rest
