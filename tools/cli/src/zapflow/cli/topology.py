"""What the local system is made of: services, their ports, and where local state lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client

from zapflow.contracts.access import ADMIN
from zapflow.runtime import natsauth
from zapflow.runtime.broker import connect
from zapflow.runtime.settings import LOCAL_DATABASE_URL, LOCAL_NATS_URL


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    http_port: int
    args: tuple[str, ...] = ()

    @property
    def env_prefix(self) -> str:
        return f"ZF_{self.name.upper()}_"

    @property
    def command(self) -> str:
        return f"zapflow-{self.name}"

    def port(self) -> int:
        return int(os.environ.get(f"{self.env_prefix}HTTP_PORT", self.http_port))

    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port()}"


SERVICES: tuple[ServiceInfo, ...] = (
    ServiceInfo("gateway", 8080),
    ServiceInfo("ingest", 8081),
    ServiceInfo("dispatcher", 8082),
    ServiceInfo("compliance", 8083),
    ServiceInfo("sender", 8084),
    ServiceInfo("realtime", 8085),
)

SIMULATOR = ServiceInfo("simulator", 8086)
"""The simulator provider ``zapflow up`` runs beside the services (not a Zapflow service)."""

LOCAL_NATS_PORT = 14222
LOCAL_NATS_MONITOR_PORT = 18222
LOCAL_PG_PORT = 15432
LOCAL_DB = "zapflow"


def state_dir() -> Path:
    """Where ``zapflow up`` keeps its data: ``ZF_HOME``, by default ``./.zapflow``."""
    return Path(os.environ.get("ZF_HOME", ".zapflow")).resolve()


def nats_url() -> str:
    return os.environ.get("NATS_URL", LOCAL_NATS_URL)


def database_url() -> str:
    return os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL)


def identities_dir() -> Path:
    """Where ``zapflow up`` keeps the NATS identities (NKey seeds) of the local system."""
    return state_dir() / "identities"


def admin_seed() -> str | None:
    """The ``admin`` seed: ``NATS_NKEY_SEED`` / ``NATS_NKEY_SEED_FILE``, else the one
    ``zapflow up`` generated, else None (anonymous, for a server without authorization)."""
    if seed := natsauth.admin_seed():
        return seed
    local = identities_dir() / f"{ADMIN}.nk"
    return local.read_text().strip() if local.exists() else None


async def connect_nats(url: str | None = None) -> Client:
    """Connect the CLI to NATS as ``admin``, failing fast when nothing answers."""
    return await connect(
        url or nats_url(),
        "zapflow-cli",
        identity=ADMIN,
        seed=admin_seed(),
        max_reconnect_attempts=1,
    )
