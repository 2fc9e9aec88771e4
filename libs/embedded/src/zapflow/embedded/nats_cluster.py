"""A JetStream cluster of nats-servers on loopback, for fault tests of replicated streams.

Each node is a :class:`~zapflow.embedded.nats.NatsServer` with its own store directory, server
name (``<name>-<i>``), client port and cluster port; every node lists every other node as a
route. Ports are fixed when the cluster is built, so a node that was killed restarts on the same
addresses and clients reconnect to it. :attr:`NatsCluster.url` names every node, comma-separated:
the form ``NATS_URL`` takes (Zapflow's services split it, ``zapflow.runtime.broker.server_urls``);
``nats.connect`` takes the list :attr:`NatsCluster.urls`.

    with NatsCluster(3) as cluster:          # or: async with NatsCluster(3) as cluster
        nc = await nats.connect(cluster.urls)  # nats-py takes the list; NATS_URL=cluster.url
        cluster.kill(1)                       # SIGKILL: what a crashed node looks like
        cluster.restart(1)

Readiness: every running node's full ``/healthz`` answers 200 and all of them name the same
JetStream meta leader (the cluster can create and place replicated streams).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from zapflow.embedded._process import log_tail
from zapflow.embedded.errors import EmbeddedError, ServerStartError
from zapflow.embedded.nats import NatsServer
from zapflow.embedded.ports import free_port

StrPath = str | os.PathLike[str]

_POLL_INTERVAL = 0.1
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NatsCluster:
    """``size`` JetStream nats-servers on ``host`` forming the cluster ``name``.

    ``root=None`` keeps the nodes' stores in a temporary directory removed by ``stop()``; a path
    keeps them (``<root>/<name>-<i>``). ``extra_args`` and ``config`` (configuration text, e.g.
    an ``authorization`` block, see :class:`~zapflow.embedded.nats.NatsServer`) go to every node.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        name: str = "zapflow",
        root: StrPath | None = None,
        host: str = "127.0.0.1",
        binary: StrPath | None = None,
        extra_args: Sequence[str] = (),
        config: str | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.size = size
        self.name = name
        self.host = host
        self.startup_timeout = startup_timeout
        self._root = Path(root) if root is not None else None
        self._scratch: Path | None = None
        self._binary = binary
        self._extra_args = tuple(extra_args)
        self._config = config
        self._stop_timeout = stop_timeout
        self.client_ports = [free_port(host) for _ in range(size)]
        self.cluster_ports = [free_port(host) for _ in range(size)]
        self.monitor_ports = [free_port(host) for _ in range(size)]
        self.nodes: list[NatsServer] = []

    # -- addresses ---------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """The client URL of each node, in node order."""
        return [f"nats://{self.host}:{port}" for port in self.client_ports]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated (``NATS_URL`` / ``nats.connect`` form)."""
        return ",".join(self.urls)

    def server_name(self, index: int) -> str:
        return f"{self.name}-{index}"

    def index_of(self, server_name: str) -> int:
        """The node index of a server name (as JetStream reports leaders)."""
        for i in range(self.size):
            if self.server_name(i) == server_name:
                return i
        raise KeyError(server_name)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start every node (together: each waits for its peers) and wait until the cluster is
        healthy. Idempotent."""
        if self.nodes and all(node.is_running for node in self.nodes):
            return self
        root = self._root
        if root is None:
            root = self._scratch = Path(tempfile.mkdtemp(prefix="zapflow-nats-cluster-"))
        self.nodes = [self._node(i, root) for i in range(self.size)]
        try:
            with ThreadPoolExecutor(self.size) as pool:
                for future in [pool.submit(node.start) for node in self.nodes]:
                    future.result()
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL); removes a temporary root. Idempotent."""
        for node in self.nodes:
            node.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``, as a crash or a lost machine would stop it."""
        node = self.nodes[index]
        pid = node.pid
        if pid is None or not node.is_running:
            raise EmbeddedError(f"node {index} is not running")
        os.kill(pid, signal.SIGKILL)
        node.stop()  # reaps the process and removes its owner and ports files

    def restart(self, index: int) -> None:
        """Start node ``index`` again on its store and ports; waits until the cluster is healthy."""
        self.nodes[index].start()
        self.wait_healthy()

    def running(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node.is_running]

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Wait until every running node is healthy and they agree on the meta leader."""
        deadline = time.monotonic() + (self.startup_timeout if timeout is None else timeout)
        while True:
            running = self.running()
            if all(self._healthy(i) for i in running) and len(self._leaders(running)) == 1:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(log_tail(self.nodes[i].log_file) for i in self.running())
                raise ServerStartError("nats-server", "cluster not healthy in time", None, tails)
            time.sleep(_POLL_INTERVAL)

    def jsz(self, index: int) -> dict[str, Any]:
        """Node ``index``'s ``/jsz`` (JetStream state, meta group leader and size)."""
        with _NO_PROXY.open(f"{self.nodes[index].monitor_url}/jsz", timeout=2) as response:
            data: dict[str, Any] = json.load(response)
        return data

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

    def _node(self, index: int, root: Path) -> NatsServer:
        routes = ",".join(
            f"nats://{self.host}:{port}" for i, port in enumerate(self.cluster_ports) if i != index
        )
        return NatsServer(
            self.client_ports[index],
            host=self.host,
            store_dir=root / self.server_name(index),
            monitor_port=self.monitor_ports[index],
            server_name=self.server_name(index),
            binary=self._binary,
            extra_args=(
                "--cluster_name", self.name,
                "--cluster", f"nats://{self.host}:{self.cluster_ports[index]}",
                "--routes", routes,
                *self._extra_args,
            ),
            config=self._config,
            startup_timeout=self.startup_timeout,
            stop_timeout=self._stop_timeout,
        )  # fmt: skip

    def _leaders(self, nodes: list[int]) -> set[str | None]:
        leaders: set[str | None] = set()
        for i in nodes:
            try:
                leaders.add(self.jsz(i).get("meta_cluster", {}).get("leader") or None)
            except (urllib.error.URLError, OSError, EmbeddedError, ValueError):
                leaders.add(None)
        return leaders if None not in leaders else {None, ""}

    def _healthy(self, index: int) -> bool:
        try:
            url = f"{self.nodes[index].monitor_url}/healthz"
            with _NO_PROXY.open(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, EmbeddedError):
            return False
