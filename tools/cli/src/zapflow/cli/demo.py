"""The demo ``zapflow up`` prepares: a seeded tenant with one Meta channel, served by the simulator.

``zapflow-gateway-admin seed-demo`` creates tenant ``demo``, its development API key and channel
``demo-meta`` whose provider base URL points at the local simulator. The simulator gets a config
file with the same number (phone_number_id, access token, app secret), so the sender's calls are
accepted and the simulator's signed status webhooks and replies pass the gateway's checks.
The values are the gateway's seed values (``zapflow.gateway.admin_cli``); a test keeps both equal.

Everything ``zapflow up`` starts runs as a development deployment (:func:`local_env`):
``ZF_ENV=development``, without which the gateway refuses the demo key and its development
secrets key, and loopback added to the egress guard's allowance (``ZF_EGRESS_ALLOW``), without
which the sender and ingest refuse to call the simulator on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from zapflow.cli.topology import SERVICES, SIMULATOR, ServiceInfo
from zapflow.runtime.settings import local_deployment_env

TENANT: Final = "demo"
API_KEY: Final = "zf_demo_local_key"
CHANNEL: Final = "demo-meta"
PHONE_NUMBER_ID: Final = "109876543210987"
ACCESS_TOKEN: Final = "demo-access-token"
APP_SECRET: Final = "demo-app-secret"
META_API_VERSION: Final = "v21.0"
REPLY_PROBABILITY: Final = 0.3


def local_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) as a local development deployment
    (:func:`zapflow.runtime.settings.local_deployment_env`)."""
    return local_deployment_env(os.environ if environ is None else environ)


def gateway() -> ServiceInfo:
    return next(svc for svc in SERVICES if svc.name == "gateway")


def provider_base_url() -> str:
    """Where the sender calls the Graph API for the demo channel: the simulator."""
    return f"{SIMULATOR.base_url()}/{META_API_VERSION}"


def simulator_config() -> dict[str, object]:
    """The simulator's settings for the demo number (JSON, read with ``--config``)."""
    return {
        "numbers": [
            {
                "channel_id": CHANNEL,
                "provider": "meta",
                "phone_number_id": PHONE_NUMBER_ID,
                "access_token": ACCESS_TOKEN,
                "app_secret": APP_SECRET,
            }
        ],
        "replies": {"probability": REPLY_PROBABILITY},
    }


def simulator_service(home: Path) -> ServiceInfo:
    """The simulator as ``zapflow up`` runs it: config and audit log under ``home``."""
    sim_home = home / "simulator"
    sim_home.mkdir(parents=True, exist_ok=True)
    config = sim_home / "config.json"
    config.write_text(json.dumps(simulator_config(), indent=2) + "\n")
    return ServiceInfo(
        SIMULATOR.name,
        SIMULATOR.http_port,
        args=(
            "serve",
            "--config",
            str(config),
            "--port",
            str(SIMULATOR.port()),
            "--gateway-url",
            gateway().base_url(),
            "--audit-log",
            str(sim_home / "audit.jsonl"),
        ),
    )


def seed(database_url: str) -> list[str]:
    """Create the demo tenant, API key and channel (idempotent); returns what the seeder said."""
    exe = shutil.which("zapflow-gateway-admin", path=str(Path(sys.executable).parent))
    if exe is None:
        raise RuntimeError("zapflow-gateway-admin is not installed in this environment")
    done = subprocess.run(
        [exe, "seed-demo", "--base-url", provider_base_url()],
        env={**local_env(), "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding the demo tenant failed: {done.stderr.strip()[-2000:]}")
    return [line for line in done.stdout.splitlines() if line.strip()]
