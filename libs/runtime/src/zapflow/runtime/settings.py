"""Settings shared by every service.

Each service subclasses :class:`BaseServiceSettings` with ``env_prefix="ZF_<SERVICE>_"``. The two
connection strings are read from the unprefixed ``NATS_URL`` and ``DATABASE_URL`` so one pair of
variables points the whole system somewhere else. Local defaults point at loopback, at the ports
``zapflow up`` uses for its embedded servers.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_NATS_URL = "nats://127.0.0.1:14222"
LOCAL_DATABASE_URL = "postgresql://zapflow@127.0.0.1:15432/zapflow"


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
    stream_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Replicas of the streams this service declares (3 in a cluster).",
    )
    shutdown_grace_s: float = 10.0

    def nats_seed(self) -> str | None:
        """The NKey seed, from the setting or its file (the setting wins)."""
        if self.nats_nkey_seed is not None:
            return self.nats_nkey_seed.get_secret_value().strip()
        if self.nats_nkey_seed_file is not None:
            return self.nats_nkey_seed_file.read_text().strip()
        return None
