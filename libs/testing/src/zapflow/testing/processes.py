"""Service processes for fault tests: start one, wait for ``/readyz``, pause, resume, kill.

    proc = ServiceProcess("zapflow-sender", env, tmp / "sender.log", port_env="ZF_SENDER_HTTP_PORT")
    proc.start()
    await proc.wait_ready()
    proc.pause()          # SIGSTOP: the process keeps its sockets but runs nothing
    proc.resume()         # SIGCONT
    proc.log_lines()      # its JSON log lines, parsed

The process logs JSON (set ``ZF_<SERVICE>_LOG_FORMAT=json`` in ``env``) to ``log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from zapflow.embedded import free_port

BIN = Path(sys.executable).parent


@dataclass
class ServiceProcess:
    """One ``zapflow-<service>`` process (or any command serving ``/readyz`` on ``port``)."""

    command: str
    env: dict[str, str]
    log: Path
    port_env: str
    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**self.env, self.port_env: str(self.port)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [BIN / self.command, *self.args], env=env, stdout=out, stderr=out
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_ready(self, within_s: float = 30.0) -> None:
        async with httpx.AsyncClient() as client, asyncio.timeout(within_s):
            while True:
                assert self.running, self.tail()
                with contextlib.suppress(httpx.HTTPError):
                    ready = await client.get(f"http://127.0.0.1:{self.port}/readyz")
                    if ready.status_code == 200:
                        return
                await asyncio.sleep(0.1)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, grace_s: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """Its JSON log lines (other output skipped)."""
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))
        return lines

    def owned(self, group: str | None = None) -> set[int]:
        """Partitions it holds a lease on now, from its log."""
        owned: set[int] = set()
        for entry in self.log_lines():
            if group is not None and entry.get("group") != group:
                continue
            if entry.get("msg") == "lease acquired":
                owned.add(entry["partition"])
            elif entry.get("msg") in LEASE_ENDED:
                owned.discard(entry.get("partition", -1))
        return owned

    def acquired_after(self, at: float) -> list[float]:
        """When it took a lease after ``at`` (epoch seconds), from its log."""
        return [
            datetime.fromisoformat(e["ts"]).timestamp()
            for e in self.log_lines()
            if e.get("msg") == "lease acquired" and datetime.fromisoformat(e["ts"]).timestamp() > at
        ]


LEASE_ENDED = frozenset(
    {"lease released", "lease lost", "lease not renewed in time", "lease given up"}
)
