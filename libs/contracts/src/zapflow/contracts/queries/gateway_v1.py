"""Queries the gateway answers: a channel's provider credentials, for services that call the
provider on the channel's behalf (ingest downloading media, the sender sending).

Credentials travel only inside the cluster, over this subject, never in events or logs; only the
services that call providers may ask (the NATS server refuses anyone else's request).
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from zapflow.contracts.envelope import Contract
from zapflow.contracts.queries import QuerySpec
from zapflow.contracts.types import ChannelId, ProviderName, TenantId


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


CHANNEL_CREDENTIALS: Final = QuerySpec(
    subject="zf.gateway.channel_credentials.v1",
    request=ChannelCredentialsRequest,
    reply=ChannelCredentialsReply,
    server="gateway",
    callers=frozenset({"ingest", "sender"}),
    description="A channel's provider credentials, decrypted (media downloads, sends).",
)

QUERIES: Final = (CHANNEL_CREDENTIALS,)
"""Every query the gateway answers."""
