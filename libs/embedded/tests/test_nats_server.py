from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import nats
import pytest

from zapflow.embedded import EmbeddedError, NatsServer, ServerStartError, free_port
from zapflow.embedded._process import is_alive
from zapflow.testing import unique

from .launcher import orphan_of_killed_launcher

pytestmark = pytest.mark.integration


async def _publish_and_fetch(url: str, stream: str, payload: bytes) -> bytes:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        ack = await js.publish(f"{stream}.one", payload)
        assert ack.stream == stream
        sub = await js.pull_subscribe(f"{stream}.>", durable="reader")
        [msg] = await sub.fetch(1, timeout=3)
        await msg.ack()
        return msg.data
    finally:
        await nc.close()


async def test_publishes_and_consumes_a_jetstream_message() -> None:
    async with NatsServer() as server:
        assert server.url.startswith("nats://127.0.0.1:")
        data = await _publish_and_fetch(server.url, unique("S").replace("-", "_"), b"hello")

    assert data == b"hello"
    assert not server.is_running
    assert server.store_dir is None  # the temporary store went with the server


def test_explicit_ports_and_server_name() -> None:
    port, monitor = free_port(), free_port()

    with NatsServer(port, monitor_port=monitor, server_name="zf-embedded-test") as server:
        assert server.url == f"nats://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{server.monitor_url}/varz", timeout=3) as response:
            varz = json.load(response)

    assert varz["server_name"] == "zf-embedded-test"
    assert varz["http_port"] == monitor
    assert varz["jetstream"]["config"]["store_dir"]


async def test_a_persistent_store_keeps_streams_across_restarts(tmp_path: Path) -> None:
    stream = unique("KEEP").replace("-", "_")
    async with NatsServer(store_dir=tmp_path / "js", log_file=tmp_path / "nats.log") as server:
        await _publish_and_fetch(server.url, stream, b"kept")

    async with NatsServer(store_dir=tmp_path / "js") as server:
        nc = await nats.connect(server.url)
        info = await nc.jetstream().stream_info(stream)
        await nc.close()

    assert info.state.messages == 1
    assert "Server is ready" in (tmp_path / "nats.log").read_text()


def test_a_busy_port_fails_with_the_log_tail() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = NatsServer(sock.getsockname()[1], startup_timeout=5)

        with pytest.raises(ServerStartError) as caught:
            server.start()

    assert "address already in use" in str(caught.value)
    assert "address already in use" in caught.value.log_tail
    assert not server.is_running


def test_url_of_a_server_on_a_free_port_needs_a_start() -> None:
    server = NatsServer()

    with pytest.raises(EmbeddedError):
        _ = server.url
    server.stop()  # stopping a server that never ran is fine


def test_start_and_stop_are_idempotent() -> None:
    server = NatsServer()
    server.start()
    pid = server.pid
    server.start()

    assert server.pid == pid
    server.stop()
    server.stop()
    assert not server.is_running


_LAUNCHER = """
import sys, time
from zapflow.embedded import NatsServer
print(NatsServer(store_dir=sys.argv[1]).start().pid, flush=True)
time.sleep(120)
"""


def test_stops_the_orphan_of_a_launcher_killed_with_sigkill(tmp_path: Path) -> None:
    orphan = orphan_of_killed_launcher(_LAUNCHER, tmp_path / "js")
    assert is_alive(orphan)

    with NatsServer(store_dir=tmp_path / "js") as server:
        assert server.is_running
        assert not is_alive(orphan)


def test_refuses_a_store_dir_another_live_server_uses(tmp_path: Path) -> None:
    with NatsServer(store_dir=tmp_path / "js") as running:
        with pytest.raises(ServerStartError, match="in use"):
            NatsServer(store_dir=tmp_path / "js").start()
        assert running.is_running
