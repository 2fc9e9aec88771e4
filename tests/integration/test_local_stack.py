"""`zapflow up` brings the six services and the simulator to ready with the demo tenant seeded;
`zapflow status` sees them; Ctrl-C stops all."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
    for service in (*SERVICES, "simulator"):
        env[f"ZF_{service.upper()}_HTTP_PORT"] = str(free_port())
    gateway = f"http://127.0.0.1:{env['ZF_GATEWAY_HTTP_PORT']}"
    simulator = f"http://127.0.0.1:{env['ZF_SIMULATOR_HTTP_PORT']}"
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
            if "Ctrl-C stops everything" in line:
                break
        printed = "".join(lines)
        assert f"all {len(SERVICES)} services and the simulator ready" in printed, printed
        assert "API key      zf_demo_local_key" in printed, printed

        channels = httpx.get(
            f"{gateway}/v1/channels", headers={"Authorization": "Bearer zf_demo_local_key"}
        )
        assert channels.status_code == 200, channels.text
        (demo,) = channels.json()["items"]
        assert demo["id"] == "demo-meta"
        assert demo["base_url"] == f"{simulator}/v21.0"
        assert httpx.get(f"{simulator}/readyz").status_code == 200

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
        consumers = status.stdout.split(" CONSUMER ", 1)[1]
        assert "KV_zf_leases" not in consumers  # lease watchers only with --all
        parked = status.stdout.split("PARKED SENDS (sender)", 1)[1]  # the sender's backlog
        assert "none: every channel holds its sends within its budget" in parked
        everything = subprocess.run(
            [BIN / "zapflow", "status", "--all"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert everything.stdout.count("\n") >= status.stdout.count("\n")
    finally:
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=40)
    assert up.returncode == 0, "".join(lines) + rest
    for service in (*SERVICES, "simulator"):
        assert f"{service} exited with code 0" in rest, rest
