"""Test fixtures: real nats-server and PostgreSQL on free ports.

The fixtures live in ``zapflow.testing.plugin``, loaded for every package by the root pytest
configuration (``-p zapflow.testing.plugin``).
"""

from zapflow.testing.identities import connect, nats_config, own_durables_seed
from zapflow.testing.naming import unique
from zapflow.testing.scratch import make_scratch_dir
from zapflow.testing.servers import SessionServers
from zapflow.testing.types import DatabaseFactory

__all__ = [
    "DatabaseFactory",
    "SessionServers",
    "connect",
    "make_scratch_dir",
    "nats_config",
    "own_durables_seed",
    "unique",
]
