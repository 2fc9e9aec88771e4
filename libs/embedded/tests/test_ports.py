from __future__ import annotations

import socket

from zapflow.embedded import free_port
from zapflow.embedded.ports import is_accepting


def test_free_port_can_be_bound_and_is_never_repeated() -> None:
    ports = [free_port() for _ in range(20)]

    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_is_accepting_tells_a_listener_from_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert is_accepting("127.0.0.1", port)
    assert not is_accepting("127.0.0.1", port)
