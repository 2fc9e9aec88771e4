"""Queries the gateway answers: a channel's provider credentials, for services that call the
provider on the channel's behalf (ingest downloading media, the sender sending).

Credentials travel only inside the cluster, over this subject, never in events or logs.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from zapflow.contracts.envelope import Contract
from zapflow.contracts.types import ChannelId, ProviderName, TenantId

CHANNEL_CREDENTIALS: Final = "zf.gateway.channel_credentials.v1"
"""Request subject; the gateway answers in queue group ``gateway``."""


class ChannelCredentialsRequest(Contract):
    tenant_id: TenantId
    channel_id: ChannelId


class ChannelCredentialsReply(Contract):
    found: bool = Field(description="False when the channel does not exist for this tenant.")
    provider: ProviderName | None = None
    base_url: str | None = None
    provider_account: str | None = Field(
        default=None, description="phone_number_id, instance name or id, as the provider wants."
    )
    credentials: dict[str, str] = Field(
        default_factory=dict,
        description="Provider secrets by name (access_token, api_key, token, client_token...).",
    )
    enabled: bool = True
