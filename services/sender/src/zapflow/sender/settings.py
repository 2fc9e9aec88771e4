"""Settings of the sender service (environment variables ``ZF_SENDER_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from zapflow.runtime.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZF_SENDER_", extra="ignore", populate_by_name=True
    )

    http_port: int = 8084

    provider_timeout_s: float = Field(default=10.0, gt=0, description="One provider call.")
    provider_max_connections: int = Field(
        default=64,
        ge=1,
        description="Connections per sending number (one pool each): enough for ~300 msg/s at "
        "200 ms; every request scans its pool, so more costs CPU.",
    )
    in_doubt_margin_s: float = Field(
        default=2.0,
        ge=0,
        description="A 'sending' record older than provider timeout + this is in doubt.",
    )
    in_doubt_window_s: float = Field(
        default=300.0,
        gt=0,
        description="How long, from the call, an in-doubt send waits for a provider status "
        "naming it, unless its channel sets in_doubt.window_s. Webhooks can lag: keep minutes.",
    )
    max_attempts: int = Field(default=6, ge=1, description="Provider calls on transient errors.")
    retry_base_s: float = Field(default=0.5, gt=0)
    retry_cap_s: float = Field(default=30.0, gt=0)
    rate_limit_budget_s: float = Field(
        default=900.0, gt=0, description="Keep retrying rate-limited sends this long."
    )
    credentials_ttl_s: float = Field(default=300.0, ge=0)
    credentials_timeout_s: float = Field(default=2.0, gt=0)

    pace_headroom: float = Field(
        default=0.01, ge=0, le=0.2, description="Pace this much below the configured rate."
    )
    aimd_decrease: float = Field(default=0.5, gt=0, lt=1)
    aimd_min_factor: float = Field(default=0.1, gt=0, le=1)
    aimd_increase: float = Field(default=0.1, gt=0, le=1)
    aimd_recover_every_s: float = Field(default=2.0, gt=0)
    aimd_cooldown_s: float = Field(default=1.0, ge=0)
    aimd_hold_s: float = Field(default=1.0, ge=0)

    channel_budget_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds of its current pace a channel may hold in memory; its further "
        "messages are parked in PostgreSQL (parked_sends) and fed back as it frees up.",
    )
    channel_budget_min: int = Field(
        default=16, ge=1, description="A channel may always hold this many in memory."
    )
    channel_budget_max: int = Field(
        default=250,
        ge=1,
        le=1000,
        description="A channel never holds more in memory; keep it well below the partition's "
        "max_ack_pending (1000), which every channel of the partition shares.",
    )

    lease_ttl_s: float = Field(default=6.0, gt=0)
    lease_renew_s: float = Field(default=1.5, gt=0)
