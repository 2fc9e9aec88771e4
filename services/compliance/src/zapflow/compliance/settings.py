"""Settings of the compliance service (environment variables ``ZF_COMPLIANCE_*``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from zapflow.runtime.settings import BaseServiceSettings


class Settings(BaseServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="ZF_COMPLIANCE_", extra="ignore", populate_by_name=True
    )

    http_port: int = 8083
