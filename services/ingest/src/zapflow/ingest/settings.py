"""Settings of the ingest service (environment variables ``ZF_INGEST_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from zapflow.runtime.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZF_INGEST_", extra="ignore", populate_by_name=True
    )

    http_port: int = 8081
    raw_batch: int = Field(default=64, ge=1, le=1000, description="Raw webhooks per fetch.")
    raw_workers: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Concurrent pull workers on ingest-raw per replica (each holds a DB "
        "connection while it works; ingest is order-insensitive, see the README).",
    )
    outbound_batch: int = Field(default=64, ge=1, le=1000, description="Send events per fetch.")
    outbound_workers: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Concurrent pull workers on ingest-outbound per replica (events of one "
        "message are serialized by an advisory lock; their order does not matter).",
    )

    # media persistence (off the ack path: a durable media_jobs queue in PostgreSQL)
    media_store: Literal["filesystem", "s3"] = "filesystem"
    media_dir: Path = Field(
        default=Path(".zapflow/media"), description="Root of the filesystem media store."
    )
    s3_endpoint: str | None = Field(
        default=None, description="S3-compatible endpoint, e.g. https://s3.us-east-1.amazonaws.com"
    )
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_prefix: str = Field(default="", description="Key prefix inside the bucket.")
    media_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    media_concurrency: int = Field(default=4, ge=1, le=64)
    media_max_attempts: int = Field(default=8, ge=1)
    media_poll_s: float = Field(default=2.0, gt=0, description="Idle poll of the media queue.")
    media_fetch_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Whole download of one media job (lookups, redirects and body together).",
    )
    credentials_timeout_s: float = Field(default=5.0, gt=0)

    # read side
    query_concurrency: int = Field(default=8, ge=1, le=256)

    # retention
    webhook_log_retention_days: float = Field(default=7.0, gt=0)
    outbox_retention_days: float = Field(default=2.0, gt=0)
    inbox_retention_days: float = Field(
        default=30.0, gt=0, description="processed_events; keep longer than ZF_INBOUND's 7 days."
    )
    pending_retention_days: float = Field(
        default=14.0,
        gt=0,
        description="Receipts, edits and send outcomes still waiting for their message; "
        "ZF_SENDING keeps send events 14 days.",
    )
    purge_interval_s: float = Field(default=3600.0, gt=0)
