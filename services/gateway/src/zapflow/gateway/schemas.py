"""Request and response bodies of the admin API (also used by ``zapflow-gateway-admin``).

Input is strict (unknown fields are errors: a misspelt setting must not be silently ignored);
the channel contracts themselves stay tolerant readers. Secrets are write-only: requests carry
values, responses only say which secrets are set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from zapflow.contracts.channels.v1 import ChannelPolicy, InDoubtSettings, PaceSettings
from zapflow.contracts.types import ChannelId, PhoneE164
from zapflow.gateway.domain import Channel, supported_providers, webhook_url

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
SecretValue = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
BaseUrl = Annotated[
    str, StringConstraints(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=500)
]
Options = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=64)],
    Annotated[str, StringConstraints(max_length=1000)],
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PaceIn(PaceSettings):
    """Pace settings; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyIn(ChannelPolicy):
    """Compliance policy; unknown fields are rejected and the timezone must exist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA timezone") from None
        return value


class InDoubtIn(InDoubtSettings):
    """In-doubt sends of the channel; unknown fields are rejected, absent ones use the sender's
    defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelCreate(_Strict):
    """A channel to register. ``id`` becomes part of the webhook URL and must be unique."""

    id: ChannelId
    provider: str = Field(description="meta, evolution, zapi or wuzapi.")
    display_name: Text | None = None
    phone: PhoneE164 | None = None
    provider_account: Text | None = Field(
        default=None,
        description="The provider's id of the number: Meta phone_number_id, Evolution instance "
        "name, Z-API instance id.",
    )
    base_url: BaseUrl | None = Field(default=None, description="Provider API base URL.")
    pace: PaceIn
    policy: PolicyIn = Field(default_factory=PolicyIn)
    in_doubt: InDoubtIn = Field(
        default_factory=InDoubtIn,
        description="A send whose sender died during the provider call: how long to wait for "
        "the provider to name it (window_s) and what then (policy: resend | dead_letter).",
    )
    provider_options: Options = Field(default_factory=dict)
    secrets: dict[str, SecretValue] = Field(
        default_factory=dict,
        description="Secrets by name; write-only. meta: app_secret (required), verify_token, "
        "access_token; evolution: api_key, webhook_api_key, jwt_key; zapi: instance_token, "
        "client_token, webhook_client_token; wuzapi: token, hmac_key.",
    )

    @field_validator("provider")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in supported_providers():
            raise ValueError(f"unsupported provider; use one of {', '.join(supported_providers())}")
        return value


class ChannelPatch(_Strict):
    """Changes to a channel: only the fields present change; ``null`` clears an optional one.

    ``secrets`` is merged: a value sets that secret, ``null`` removes it. The provider and the
    id cannot change (they are part of the webhook URL): register a new channel instead.
    """

    display_name: Text | None = None
    phone: PhoneE164 | None = None
    provider_account: Text | None = None
    base_url: BaseUrl | None = None
    pace: PaceIn | None = None
    policy: PolicyIn | None = None
    in_doubt: InDoubtIn | None = None
    provider_options: Options | None = None
    secrets: dict[str, SecretValue | None] | None = None


class DisableRequest(_Strict):
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class ChannelOut(BaseModel):
    """A channel as the API shows it: secrets by name only."""

    id: str
    tenant_id: str
    provider: str
    display_name: str | None
    phone: str | None
    provider_account: str | None
    base_url: str | None
    pace: PaceSettings
    policy: ChannelPolicy
    in_doubt: InDoubtSettings
    provider_options: dict[str, str]
    enabled: bool
    disabled_reason: str | None
    secrets_set: list[str] = Field(description="Names of the secrets that are set.")
    webhook_url: str = Field(description="Configure this URL as the provider's webhook.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, channel: Channel, public_base_url: str) -> ChannelOut:
        return cls(
            id=channel.channel_id,
            tenant_id=channel.tenant_id,
            provider=channel.provider,
            display_name=channel.display_name,
            phone=channel.phone,
            provider_account=channel.provider_account,
            base_url=channel.base_url,
            pace=channel.pace,
            policy=channel.policy,
            in_doubt=channel.in_doubt,
            provider_options=channel.provider_options,
            enabled=channel.enabled,
            disabled_reason=channel.disabled_reason,
            secrets_set=sorted(channel.secret_names),
            webhook_url=webhook_url(
                public_base_url, channel.provider, channel.channel_id, channel.webhook_token
            ),
            created_at=channel.created_at,
            updated_at=channel.updated_at,
        )


class ChannelList(BaseModel):
    items: list[ChannelOut]


class ErrorOut(BaseModel):
    """Every error answer: a short reason, and for invalid requests one line per problem."""

    error: str
    reasons: list[str] | None = None
