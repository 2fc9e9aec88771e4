"""Settings of the compliance service (environment variables ``ZF_COMPLIANCE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from zapflow.runtime.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZF_COMPLIANCE_", extra="ignore", populate_by_name=True
    )

    http_port: int = 8083
    scheduler_interval_s: float = Field(
        default=1.0, gt=0, description="How often deferred sends are checked for being due."
    )
    outbox_sweep_after_s: float = Field(
        default=10.0, ge=0, description="Publish outbox events left unpublished this long."
    )
    unknown_channel_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="Retry a request for an unknown channel until it is this old, then veto.",
    )
    db_pool_size: int = Field(
        default=24,
        ge=1,
        le=200,
        description="Most PostgreSQL connections: one per request partition in a decision, "
        "plus the outbox, the scheduler and the queries.",
    )
    request_batch: int = Field(default=32, ge=1, description="Messages fetched per pull.")
