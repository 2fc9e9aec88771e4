"""Settings shared by every service.

Each service subclasses :class:`BaseServiceSettings` with ``env_prefix="ZF_<SERVICE>_"``. The two
connection strings are read from the unprefixed ``NATS_URL`` and ``DATABASE_URL`` so one pair of
variables points the whole system somewhere else. Local defaults point at loopback, at the ports
``zapflow up`` uses for its embedded servers.

How streams are stored (``ZF_STREAM_REPLICAS``, ``ZF_STREAM_MAX_BYTES``, ``ZF_STREAM_MAX_AGE``)
is shared too, never per service: several services declare the same stream, and each start-up
would otherwise update it to its own values.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import ByteSize, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zapflow.runtime.broker import StreamLimits

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
