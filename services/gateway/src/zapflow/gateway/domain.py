"""What a channel is to the gateway, and the per-provider rules about its secrets. Pure: no I/O.

Each provider accepts a fixed set of secret names (:data:`SECRET_NAMES`): webhook-verification
secrets (:data:`WEBHOOK_SECRETS`) stay in the gateway; outbound ones (:data:`OUTBOUND_SECRETS`,
named as ``zapflow.providers`` reads them) are handed to ingest and the sender over the
``CHANNEL_CREDENTIALS`` request-reply subject, together with the provider account under the
credential name the adapter reads (:data:`ACCOUNT_CREDENTIAL`).

Providers that sign nothing by default (Evolution, Z-API, WuzAPI) always require the channel's
webhook token as ``?token=`` (part of the webhook URL the API shows); Meta relies on its
``X-Hub-Signature-256`` and needs ``app_secret``.
"""

from __future__ import annotations

import secrets as random_secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from zapflow.contracts.channels.v1 import (
    ChannelPolicy,
    ChannelSettings,
    InDoubtSettings,
    PaceSettings,
)
from zapflow.contracts.subjects import webhook_received
from zapflow.providers.base import ChannelSecrets

WEBHOOK_SECRETS: Final[Mapping[str, Mapping[str, str]]] = {
    "meta": {"app_secret": "app_secret", "verify_token": "verify_token"},
    "evolution": {"webhook_api_key": "api_key", "jwt_key": "jwt_key"},
    "zapi": {"webhook_client_token": "client_token"},
    "wuzapi": {"hmac_key": "hmac_key"},
}
"""Per provider: the secrets that verify its webhooks, mapped to the ``ChannelSecrets`` field
the adapter checks. They are distinct from the outbound ones even where the provider's words
match (Evolution's global ``apikey`` is not the instance token its webhooks may carry)."""

OUTBOUND_SECRETS: Final[Mapping[str, frozenset[str]]] = {
    "meta": frozenset({"access_token"}),
    "evolution": frozenset({"api_key"}),
    "zapi": frozenset({"instance_token", "client_token"}),
    "wuzapi": frozenset({"token"}),
}
"""Per provider: the secrets other services need to call it (``CHANNEL_CREDENTIALS``)."""

SECRET_NAMES: Final[Mapping[str, frozenset[str]]] = {
    provider: frozenset(WEBHOOK_SECRETS[provider]) | OUTBOUND_SECRETS[provider]
    for provider in WEBHOOK_SECRETS
}
"""The secrets each supported provider takes; the keys are the providers a channel may use."""

REQUIRED_SECRETS: Final[Mapping[str, frozenset[str]]] = {"meta": frozenset({"app_secret"})}
"""Secrets without which a channel's webhooks could not be verified (the others use the
channel's webhook token)."""

ACCOUNT_CREDENTIAL: Final[Mapping[str, str]] = {
    "meta": "phone_number_id",
    "evolution": "instance",
    "zapi": "instance_id",
}
"""The credential name under which the adapter expects ``provider_account``."""

PATH_TOKEN_PARAM: Final = "token"
"""The query parameter carrying a channel's webhook token."""


def supported_providers() -> tuple[str, ...]:
    return tuple(SECRET_NAMES)


def uses_path_token(provider: str) -> bool:
    """True if the channel's webhooks must carry ``?token=<webhook token>``."""
    return provider != "meta"


def new_webhook_token() -> str:
    return random_secrets.token_urlsafe(24)


def unknown_secrets(provider: str, names: Mapping[str, object]) -> list[str]:
    """Names the provider does not take, sorted."""
    allowed = SECRET_NAMES.get(provider, frozenset())
    return sorted(set(names) - allowed)


def missing_secrets(provider: str, names: set[str] | frozenset[str]) -> list[str]:
    return sorted(REQUIRED_SECRETS.get(provider, frozenset()) - names)


def webhook_secrets(provider: str, values: Mapping[str, str], webhook_token: str) -> ChannelSecrets:
    """What the provider adapter verifies webhooks with."""
    fields = {
        field: values[name]
        for name, field in WEBHOOK_SECRETS.get(provider, {}).items()
        if name in values
    }
    path_token = webhook_token if uses_path_token(provider) else None
    return ChannelSecrets(**fields, path_token=path_token)


def outbound_credentials(
    provider: str, values: Mapping[str, str], provider_account: str | None
) -> dict[str, str]:
    """Credentials for ``ChannelCredentialsReply``: outbound secrets plus the account id."""
    wanted = OUTBOUND_SECRETS.get(provider, frozenset())
    out = {name: value for name, value in values.items() if name in wanted}
    account_key = ACCOUNT_CREDENTIAL.get(provider)
    if account_key is not None and provider_account:
        out[account_key] = provider_account
    return out


def webhook_url(base_url: str, provider: str, channel_id: str, webhook_token: str) -> str:
    url = f"{base_url}/webhooks/{provider}/{channel_id}"
    return f"{url}?{PATH_TOKEN_PARAM}={webhook_token}" if uses_path_token(provider) else url


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel as stored by the gateway; secrets only by name (values stay sealed)."""

    tenant_id: str
    channel_id: str
    provider: str
    display_name: str | None
    phone: str | None
    provider_account: str | None
    base_url: str | None
    pace: PaceSettings
    policy: ChannelPolicy
    provider_options: dict[str, str]
    secret_names: tuple[str, ...]
    webhook_token: str
    enabled: bool
    disabled_reason: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    in_doubt: InDoubtSettings = field(default_factory=InDoubtSettings)

    @property
    def inbound_subject(self) -> str:
        return webhook_received(self.tenant_id, self.channel_id)

    def settings(self) -> ChannelSettings:
        """The channel as other services learn it from channel events: never a secret."""
        outbound = OUTBOUND_SECRETS.get(self.provider, frozenset())
        has_outbound = any(name in outbound for name in self.secret_names)
        return ChannelSettings(
            channel_id=self.channel_id,
            provider=self.provider,
            display_name=self.display_name,
            phone=self.phone,
            provider_account=self.provider_account,
            base_url=self.base_url,
            credentials_ref=(
                f"gateway:{self.tenant_id}/{self.channel_id}" if has_outbound else None
            ),
            provider_options=self.provider_options,
            pace=self.pace,
            policy=self.policy,
            enabled=self.enabled,
            in_doubt=self.in_doubt,
        )
