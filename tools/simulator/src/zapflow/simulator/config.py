"""The simulator's settings: one :class:`SimulatorSettings`, from a file, the environment and flags.

Precedence, highest first: keyword arguments (the CLI flags), environment variables
``ZF_SIMULATOR_<FIELD>`` (nested fields with ``__``, e.g. ``ZF_SIMULATOR_LATENCY__FIXED_MS=40``,
lists as JSON, e.g. ``ZF_SIMULATOR_NUMBERS='[{"channel_id": "c1", ...}]'``), the YAML or JSON file
named by ``config_file`` (``--config`` / ``ZF_SIMULATOR_CONFIG_FILE``), then the defaults below.
Nested sections merge key by key, so a flag or variable overrides one knob of a file's section.

Without any configuration the simulator serves one Meta number, :data:`DEMO_NUMBER`, whose
webhooks go to the gateway at ``http://127.0.0.1:8080/webhooks/meta/demo-meta``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "ZF_SIMULATOR_"
DEFAULT_PORT = 8086
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"

Probability = float


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimitConfig(_Section):
    """A token bucket: ``rate`` tokens per second, at most ``burst`` banked. In any window of
    ``w`` seconds at most ``burst + rate * w`` requests pass."""

    rate: float = Field(gt=0)
    burst: int = Field(ge=1)


class NumberConfig(_Section):
    """One simulated business number and where its webhooks go.

    Meta numbers are addressed by ``phone_number_id`` (``POST /{version}/{id}/messages``),
    Evolution ones by ``instance`` (``POST /message/sendText/{instance}``). ``access_token``
    (Meta, ``Authorization: Bearer``) and ``api_key`` (Evolution, ``apikey`` header) are checked
    when set; ``app_secret`` signs Meta webhooks (``X-Hub-Signature-256``) when set.
    """

    channel_id: str = Field(min_length=1, description="Zapflow's id of the channel.")
    provider: Literal["meta", "evolution"] = "meta"
    phone_number_id: str | None = Field(default=None, pattern=r"^\d{1,32}$")
    instance: str | None = Field(default=None, min_length=1, max_length=128)
    display_phone_number: str = Field(default="5511999990000", pattern=r"^\d{8,15}$")
    waba_id: str = Field(default="200000000000001", pattern=r"^\d{1,32}$")
    access_token: SecretStr | None = None
    app_secret: SecretStr | None = None
    api_key: SecretStr | None = None
    webhook_url: str | None = Field(
        default=None,
        description="Default: {gateway_url}/webhooks/{provider}/{channel_id}.",
    )
    rate_limit: RateLimitConfig | None = Field(
        default=None, description="Overrides the global throughput limit for this number."
    )

    @model_validator(mode="after")
    def _addressable(self) -> Self:
        if self.provider == "meta" and self.phone_number_id is None:
            raise ValueError("a meta number needs phone_number_id")
        if self.provider == "evolution" and self.instance is None:
            raise ValueError("an evolution number needs instance")
        return self

    @property
    def key(self) -> str:
        """The id the provider's API addresses the number by (phone_number_id or instance)."""
        return (self.phone_number_id if self.provider == "meta" else self.instance) or ""


class LatencyConfig(_Section):
    """Delay before every answer: ``fixed_ms`` plus a uniform ``[0, jitter_ms)``."""

    fixed_ms: float = Field(default=0.0, ge=0)
    jitter_ms: float = Field(default=0.0, ge=0)


class ErrorConfig(_Section):
    """Random failures. ``server_error_rate``: refuse with a 5xx (nothing accepted).
    ``lost_response_rate``: accept the message, then answer 503 as if the answer was lost, which
    makes a retrying client send it twice. ``rate_limit_http_status``: Meta's HTTP status for
    130429/131056 is not documented (clients must classify by ``error.code``)."""

    server_error_rate: Probability = Field(default=0.0, ge=0, le=1)
    lost_response_rate: Probability = Field(default=0.0, ge=0, le=1)
    rate_limit_http_status: int = Field(default=400, ge=400, le=599)


class StormConfig(_Section):
    """Periods in which every send answers 130429: ``duration_s`` long, the first one
    ``start_after_s`` after start, then every ``every_s`` (once if ``every_s`` is None).
    ``POST /_storm`` starts one on demand."""

    duration_s: float = Field(default=5.0, gt=0)
    start_after_s: float = Field(default=0.0, ge=0)
    every_s: float | None = Field(default=None, gt=0)


class StatusConfig(_Section):
    """Status webhooks after an accepted send, with delays counted from acceptance.

    ``sent`` always comes first (or ``failed`` with ``failed_code`` instead, with probability
    ``failed_probability`` or always for a recipient in ``undeliverable``); ``delivered`` and then
    ``read`` follow with their probabilities (``read`` only after ``delivered``).
    """

    sent_after_ms: float = Field(default=100.0, ge=0)
    delivered_after_ms: float = Field(default=400.0, ge=0)
    read_after_ms: float = Field(default=1500.0, ge=0)
    delivered_probability: Probability = Field(default=1.0, ge=0, le=1)
    read_probability: Probability = Field(default=0.8, ge=0, le=1)
    failed_probability: Probability = Field(default=0.0, ge=0, le=1)
    failed_code: int = 131026
    undeliverable: tuple[str, ...] = Field(default=(), description="Recipient digits.")


class ReplyConfig(_Section):
    """Inbound replies: with ``probability``, ``after_ms`` after the status chain, the recipient
    answers one of ``texts`` (quoting the message)."""

    probability: Probability = Field(default=0.0, ge=0, le=1)
    after_ms: float = Field(default=2000.0, ge=0)
    texts: tuple[str, ...] = Field(default=("Obrigado!", "Ok, combinado.", "Pode me ligar?"))
    contact_name: str = "Cliente Simulado"

    @model_validator(mode="after")
    def _has_text(self) -> Self:
        if self.probability > 0 and not self.texts:
            raise ValueError("replies need at least one text")
        return self


class WebhookConfig(_Section):
    """Delivery of webhooks to the gateway: retried on non-2xx and connection errors with
    exponential backoff and jitter, at most ``max_attempts`` times; ``batch_max`` > 1 lets one
    Meta POST carry several due statuses of one number (Meta batches too)."""

    enabled: bool = True
    max_attempts: int = Field(default=8, ge=1)
    initial_backoff_ms: float = Field(default=250.0, gt=0)
    max_backoff_ms: float = Field(default=30_000.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0)
    concurrency: int = Field(default=4, ge=1, le=1024)
    batch_max: int = Field(default=20, ge=1, le=1000)
    max_pending: int = Field(default=100_000, ge=1)


class AuditConfig(_Section):
    """The audit log: one JSON line per accepted send, appended every ``flush_interval_ms``
    (fsync'ed when ``fsync``). Without ``path`` the records stay in memory only."""

    path: Path | None = None
    flush_interval_ms: float = Field(default=50.0, gt=0)
    fsync: bool = True


def demo_number() -> NumberConfig:
    """The number served when none is configured (the fixtures' phone_number_id)."""
    return NumberConfig(
        channel_id="demo-meta",
        phone_number_id="109876543210987",
        access_token=SecretStr("sim-access-token"),
        app_secret=SecretStr("sim-app-secret"),
    )


class SimulatorSettings(BaseSettings):
    """Everything the simulator process needs; built once in ``__main__`` (or a test)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    config_file: Path | None = Field(default=None, description="YAML or JSON settings file.")
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    gateway_url: str = DEFAULT_GATEWAY_URL
    seed: int | None = Field(default=None, description="Seed of every random choice.")
    log_level: str = "INFO"
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")
    numbers: tuple[NumberConfig, ...] = Field(default_factory=lambda: (demo_number(),))
    latency: LatencyConfig = LatencyConfig()
    errors: ErrorConfig = ErrorConfig()
    rate_limit: RateLimitConfig | None = RateLimitConfig(rate=80.0, burst=80)
    pair_rate_limit: RateLimitConfig | None = None
    storm: StormConfig | None = None
    statuses: StatusConfig = StatusConfig()
    replies: ReplyConfig = ReplyConfig()
    webhooks: WebhookConfig = WebhookConfig()
    audit: AuditConfig = AuditConfig()

    @model_validator(mode="after")
    def _unique_numbers(self) -> Self:
        channels = [n.channel_id for n in self.numbers]
        keys = [(n.provider, n.key) for n in self.numbers]
        if len(set(channels)) != len(channels) or len(set(keys)) != len(keys):
            raise ValueError("numbers need unique channel ids and phone_number_ids/instances")
        return self

    def webhook_url(self, number: NumberConfig) -> str:
        """Where ``number``'s webhooks go."""
        if number.webhook_url:
            return number.webhook_url
        base = self.gateway_url.rstrip("/")
        return f"{base}/webhooks/{number.provider}/{number.channel_id}"

    def throughput(self, number: NumberConfig) -> RateLimitConfig | None:
        """The throughput limit of ``number``: its own, else the global one."""
        return number.rate_limit or self.rate_limit

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ConfigFileSource(settings_cls)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads the file named by ``config_file`` as given by the sources before it."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        path = self.current_state.get("config_file")
        return load_file(Path(path)) if path else {}


def load_file(path: Path) -> dict[str, Any]:
    """A settings file as a mapping: JSON for ``*.json``, YAML otherwise."""
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: settings must be a mapping")
    return data
