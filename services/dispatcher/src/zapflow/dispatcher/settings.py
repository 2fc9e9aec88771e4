"""Settings of the dispatcher service (environment variables ``ZF_DISPATCHER_*``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from zapflow.runtime.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZF_DISPATCHER_", extra="ignore", populate_by_name=True
    )

    http_port: int = 8082
