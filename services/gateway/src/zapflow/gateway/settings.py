"""Settings of the gateway service (environment variables ``ZF_GATEWAY_*``).

``ZF_GATEWAY_SECRETS_KEY`` encrypts channel secrets at rest (see :mod:`zapflow.gateway.crypto`).
Its default, :data:`DEV_SECRETS_KEY`, is public (it is in this file) and exists only so that
``zapflow up`` and the tests run without configuration: unless ``ZF_ENV=development``, settings
naming it (as the default, or anywhere in the rotation list) are invalid and the gateway and
``zapflow-gateway-admin`` refuse to start.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from zapflow.runtime.settings import BaseServiceSettings

DEV_SECRETS_KEY: Final = "ZGV2LW9ubHktemFwZmxvdy1nYXRld2F5LWtleS0wMDE"
"""Development-only AES-256 key (base64url of 32 ASCII bytes). Never use it in production."""

MIB: Final = 1024 * 1024
WEBHOOK_MAX_BODY_BYTES: Final = 16 * MIB
"""Default webhook body limit: Evolution sends media inline as base64 (WhatsApp allows 16 MB
video and audio). deploy/k8s's ingress allows the same (a test holds them together)."""
API_MAX_BODY_BYTES: Final = 256 * 1024
"""Default REST API body limit: sends and rule sets are a few KiB."""


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZF_GATEWAY_", extra="ignore", populate_by_name=True
    )

    http_port: int = 8080
    public_url: str | None = Field(
        default=None,
        description="Base URL providers reach the gateway at, used in the webhook URLs the API "
        "shows; defaults to http://<http_host>:<http_port>.",
    )
    secrets_key: SecretStr = Field(
        default=SecretStr(DEV_SECRETS_KEY),
        description="Comma-separated base64url AES-256 keys; the first encrypts, all decrypt "
        "(rotation). The default is a public development key.",
    )
    webhook_max_body_bytes: int = Field(
        default=WEBHOOK_MAX_BODY_BYTES,
        ge=1024,
        description="Webhook body limit (413 above). Keep the ingress's body limit at least this "
        "(deploy/k8s: nginx proxy-body-size 16m); bodies too large for one NATS message are "
        "stored in the zf_inbound_bodies object store (claim check).",
    )
    webhook_inline_max_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Bodies up to this size travel inline (base64) in the raw event; larger ones "
        "go to the object store. Default: the most the NATS server's max_payload allows; a "
        "larger value is refused at start-up.",
    )
    webhook_failures_per_s: float = Field(
        default=1.0,
        gt=0,
        description="Failed webhook requests (bad signature/token, unknown channel) allowed per "
        "source address, sustained; past the burst the source gets 429 before any work.",
    )
    webhook_failure_burst: int = Field(
        default=30, ge=1, description="Failed webhook requests per source address, bucket size."
    )
    webhook_client_ip_header: str | None = Field(
        default=None,
        description="Header naming the client address behind a trusted proxy (the last entry "
        "counts, e.g. x-forwarded-for behind ingress-nginx); unset: the TCP peer.",
    )
    webhook_rate_per_s: float = Field(
        default=300.0, gt=0, description="Per-channel webhook flood limit: sustained rate."
    )
    webhook_burst: int = Field(
        default=1000, ge=1, description="Per-channel webhook flood limit: bucket size."
    )
    webhook_publish_timeout_s: float = Field(
        default=5.0, gt=0, description="Wait this long for JetStream's ack, then answer 503."
    )
    channel_cache_refresh_s: float = Field(
        default=30.0, gt=0, description="Full reload of the webhook channel cache."
    )
    outbox_poll_s: float = Field(
        default=1.0, gt=0, description="Outbox relay poll interval (NOTIFY wakes it sooner)."
    )
    gc_freeze: bool = Field(
        default=True,
        description="gc.freeze() once started: long-lived start-up objects skip full GC passes.",
    )
    outbox_retention_days: int = Field(default=7, ge=1, description="Keep sent outbox rows.")
    api_max_body_bytes: int = Field(
        default=API_MAX_BODY_BYTES, ge=1024, description="REST API request body limit (413 above)."
    )
    idempotency_retention_days: int = Field(
        default=30,
        ge=1,
        description="Keep the Idempotency-Key of an API send this long; a key reused later "
        "sends a new message.",
    )

    auth_failure_rate_per_s: float = Field(
        default=0.5,
        gt=0,
        description="Failed API-key authentications allowed per second, sustained, per client "
        "address and per key prefix (per replica).",
    )
    auth_failure_burst: int = Field(
        default=20,
        ge=1,
        description="Failed API-key authentications allowed at once per client address and "
        "per key prefix before 429.",
    )

    @model_validator(mode="after")
    def _development_key_only_in_development(self) -> Settings:
        if self.uses_dev_secrets_key and not self.development:
            raise ValueError(
                "ZF_GATEWAY_SECRETS_KEY is (or includes) the public development key: set a key "
                "of your own (python -c 'from zapflow.gateway.crypto import new_key; "
                "print(new_key())'), or ZF_ENV=development for a local run"
            )
        return self

    @property
    def webhook_base_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    @property
    def uses_dev_secrets_key(self) -> bool:
        return DEV_SECRETS_KEY in self.secrets_key.get_secret_value().split(",")
