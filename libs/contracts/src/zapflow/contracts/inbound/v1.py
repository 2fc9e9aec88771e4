"""Inbound context v1: raw provider webhooks, stored before anything parses them.

Produced by the gateway (which answers the provider 2xx only after JetStream acknowledged the
event); consumed by ingest, which parses them with ``zapflow.providers``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from zapflow.contracts.envelope import Event
from zapflow.contracts.types import ChannelId, ProviderName


class WebhookReceived(Event):
    """A provider webhook reached the gateway, passed its signature check and was stored as is."""

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id", "channel_id")
    type: Literal["zf.inbound.webhook_received.v1"] = "zf.inbound.webhook_received.v1"
    provider: ProviderName
    channel_id: ChannelId
    received_at: AwareDatetime
    body_b64: str = Field(
        description="The request body, byte for byte, base64-encoded; empty when the body is "
        "stored apart (`body_ref`)."
    )
    content_type: str | None = Field(default=None, description="The request's Content-Type.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Only the headers that matter to parsing (lower-cased names), never auth.",
    )
    query: dict[str, str] = Field(default_factory=dict, description="Query string parameters.")
    signature_verified: bool = Field(
        default=True, description="False only for providers that sign nothing."
    )
    body_ref: str | None = Field(
        default=None,
        description="Set for bodies too large to travel inline: the name of the object holding "
        "the body, byte for byte, in the JetStream object store bucket `zf_inbound_bodies` "
        "(claim check); `body_b64` is then empty.",
    )
    body_size: int | None = Field(
        default=None, ge=0, description="Size of the body in bytes (set with `body_ref`)."
    )
