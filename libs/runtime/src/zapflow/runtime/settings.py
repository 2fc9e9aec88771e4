"""Settings shared by every service.

Each service subclasses :class:`BaseServiceSettings` with ``env_prefix="ZF_<SERVICE>_"``. The two
connection strings are read from the unprefixed ``NATS_URL`` and ``DATABASE_URL`` so one pair of
variables points the whole system somewhere else. Local defaults point at loopback, at the ports
``zapflow up`` uses for its embedded servers.

Two more unprefixed settings describe the deployment rather than one service:

* ``ZF_ENV`` — ``production`` (the default) or ``development``. Development-only conveniences
  (the gateway's public demo API key and development secrets key) are refused in production.
* ``ZF_EGRESS_ALLOW`` — the egress guard's allowance (:mod:`zapflow.runtime.egress`):
  comma-separated CIDRs, addresses or host names that outbound calls to tenant- or
  payload-chosen URLs may reach although their address class is refused (loopback, private…).
  Empty by default; ``zapflow up`` and the test harness set loopback
  (:data:`~zapflow.runtime.egress.LOOPBACK_ALLOWANCE`).

How streams are stored (``ZF_STREAM_REPLICAS``, ``ZF_STREAM_MAX_BYTES``, ``ZF_STREAM_MAX_AGE``)
is shared too, never per service: several services declare the same stream, and each start-up
would otherwise update it to its own values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zapflow.runtime.broker import StreamLimits
from zapflow.runtime.db import Timeouts
from zapflow.runtime.egress import LOOPBACK_ALLOWANCE, EgressPolicy

LOCAL_NATS_URL = "nats://127.0.0.1:14222"
LOCAL_DATABASE_URL = "postgresql://zapflow@127.0.0.1:15432/zapflow"


def local_deployment_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` as a local development deployment (``zapflow up``, the test harness, the
    benchmarks): ``ZF_ENV=development`` and loopback appended to any ``ZF_EGRESS_ALLOW``, so
    services reach the simulator and fake servers on 127.0.0.1/::1 with the guard on."""
    env = dict(environ)
    env["ZF_ENV"] = "development"
    given = env.get("ZF_EGRESS_ALLOW", "").strip(" ,")
    env["ZF_EGRESS_ALLOW"] = f"{given},{LOOPBACK_ALLOWANCE}" if given else LOOPBACK_ALLOWANCE
    return env


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    nats_url: str = Field(default=LOCAL_NATS_URL, validation_alias="NATS_URL")
    nats_nkey_seed: SecretStr | None = Field(
        default=None,
        description="This service's NATS identity (NKey seed); unset: connect anonymously.",
    )
    nats_nkey_seed_file: Path | None = Field(
        default=None, description="File holding the NKey seed (a mounted Secret)."
    )
    nats_tls_ca_file: Path | None = Field(
        default=None,
        validation_alias="NATS_TLS_CA_FILE",
        description="CA bundle to verify a tls:// NATS server with (default: system CAs).",
    )
    database_url: SecretStr = Field(
        default=SecretStr(LOCAL_DATABASE_URL), validation_alias="DATABASE_URL"
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8090
    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")
    otel_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint; traces are only propagated if unset."
    )
    migrate_on_start: bool = True
    db_pool_size: int = Field(
        default=10, ge=1, le=200, description="Most PostgreSQL connections this replica opens."
    )
    db_statement_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="PostgreSQL statement_timeout of every pooled connection; a cancelled "
        "statement counts against its message like any other failure.",
    )
    db_acquire_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for a free pooled connection."
    )
    db_connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for a new PostgreSQL connection."
    )
    db_idle_in_transaction_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="The server ends a session idle this long inside a transaction (its locks "
        "go with it).",
    )
    stream_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        validation_alias="ZF_STREAM_REPLICAS",
        description="Replicas of every stream and KV bucket (3 on a 3-node NATS cluster).",
    )
    stream_max_bytes: dict[str, ByteSize] = Field(
        default_factory=dict,
        validation_alias="ZF_STREAM_MAX_BYTES",
        description='Per-stream size instead of the declared one, JSON: {"ZF_INBOUND": "4GiB"}.',
    )
    stream_max_age: dict[str, timedelta] = Field(
        default_factory=dict,
        validation_alias="ZF_STREAM_MAX_AGE",
        description='Per-stream age instead of the declared one, JSON: {"ZF_INBOUND": "P14D"}.',
    )
    shutdown_grace_s: float = 10.0
    environment: Literal["development", "production"] = Field(
        default="production",
        validation_alias="ZF_ENV",
        description="development enables the public development keys; anything else refuses them.",
    )
    egress_allow: str = Field(
        default="",
        validation_alias="ZF_EGRESS_ALLOW",
        description="CIDRs, addresses or host names outbound calls to tenant-chosen URLs may "
        "reach although the egress guard refuses their class; empty in production.",
    )

    @field_validator("egress_allow")
    @classmethod
    def _valid_allowance(cls, value: str) -> str:
        EgressPolicy.parse(value)  # raises ValueError for an entry it refuses
        return value

    @property
    def development(self) -> bool:
        return self.environment == "development"

    def egress_policy(self) -> EgressPolicy:
        """The egress guard's policy with this deployment's allowance."""
        return EgressPolicy.parse(self.egress_allow)

    def nats_seed(self) -> str | None:
        """The NKey seed, from the setting or its file (the setting wins)."""
        if self.nats_nkey_seed is not None:
            return self.nats_nkey_seed.get_secret_value().strip()
        if self.nats_nkey_seed_file is not None:
            return self.nats_nkey_seed_file.read_text().strip()
        return None

    @model_validator(mode="after")
    def _known_streams(self) -> BaseServiceSettings:
        self.stream_limits()  # fails at start on a stream name no declaration has
        return self

    def stream_limits(self) -> StreamLimits:
        """The stream settings as the broker applies them (unknown stream names are refused)."""
        return StreamLimits(
            replicas=self.stream_replicas,
            max_bytes={name: int(size) for name, size in self.stream_max_bytes.items()},
            max_age_s={name: age.total_seconds() for name, age in self.stream_max_age.items()},
        )

    def db_timeouts(self) -> Timeouts:
        return Timeouts(
            statement_s=self.db_statement_timeout_s,
            acquire_s=self.db_acquire_timeout_s,
            connect_s=self.db_connect_timeout_s,
            idle_in_transaction_s=self.db_idle_in_transaction_timeout_s,
        )
