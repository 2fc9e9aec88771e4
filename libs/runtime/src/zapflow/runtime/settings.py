"""Settings shared by every service.

Each service subclasses :class:`BaseServiceSettings` with ``env_prefix="ZF_<SERVICE>_"``. The two
connection strings are read from the unprefixed ``NATS_URL`` and ``DATABASE_URL`` so one pair of
variables points the whole system somewhere else. Local defaults point at loopback, at the ports
``zapflow up`` uses for its embedded servers.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from zapflow.runtime.db import Timeouts

LOCAL_NATS_URL = "nats://127.0.0.1:14222"
LOCAL_DATABASE_URL = "postgresql://zapflow@127.0.0.1:15432/zapflow"


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    nats_url: str = Field(default=LOCAL_NATS_URL, validation_alias="NATS_URL")
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
        description="Replicas of the streams this service declares (3 in a cluster).",
    )
    shutdown_grace_s: float = 10.0

    def db_timeouts(self) -> Timeouts:
        return Timeouts(
            statement_s=self.db_statement_timeout_s,
            acquire_s=self.db_acquire_timeout_s,
            connect_s=self.db_connect_timeout_s,
            idle_in_transaction_s=self.db_idle_in_transaction_timeout_s,
        )
