"""Embedded nats-server and PostgreSQL processes for local runs and tests.

``NatsServer`` (``zapflow.embedded.nats``) and ``PostgresServer`` (``zapflow.embedded.postgres``)
start real servers as child processes on loopback, wait until they are ready and stop them; both
are sync context managers that also work with ``async with``. ``NatsCluster``
(``zapflow.embedded.nats_cluster``) runs several nats-servers as one JetStream cluster, for fault
tests of replicated streams.
"""

from zapflow.embedded.errors import (
    BinaryNotFoundError,
    DataDirError,
    EmbeddedError,
    ServerStartError,
)
from zapflow.embedded.nats import NatsServer, find_nats_server_binary
from zapflow.embedded.nats_cluster import NatsCluster
from zapflow.embedded.ports import free_port
from zapflow.embedded.postgres import PostgresServer, find_postgres_bindir

__all__ = [
    "BinaryNotFoundError",
    "DataDirError",
    "EmbeddedError",
    "NatsCluster",
    "NatsServer",
    "PostgresServer",
    "ServerStartError",
    "find_nats_server_binary",
    "find_postgres_bindir",
    "free_port",
]
