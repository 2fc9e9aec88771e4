"""Value types shared by every contract.

Identifiers that travel inside subjects (tenant and channel ids) are restricted to characters that
are safe as a NATS subject token. Phone numbers are E.164 with the leading ``+``.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

from pydantic import StringConstraints

SUBJECT_TOKEN_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

TenantId = Annotated[str, StringConstraints(pattern=SUBJECT_TOKEN_PATTERN)]
"""A tenant's id: lowercase letters, digits, ``-`` and ``_``; safe as a subject token."""

ChannelId = Annotated[str, StringConstraints(pattern=SUBJECT_TOKEN_PATTERN)]
"""A sending/receiving number registered with a provider, as Zapflow names it."""

PhoneE164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]
"""A phone number in E.164 form, e.g. ``+5511999990001``."""

ProviderName = Annotated[
    str, StringConstraints(pattern=r"^(meta|evolution|zapi|wuzapi|simulator)$")
]
"""The provider a channel talks to."""

UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""An operator (console user) id, as the gateway issued it."""

ServiceName = Literal["gateway", "ingest", "dispatcher", "compliance", "sender", "realtime"]
"""One of the six services; each owns its streams, consumers and data."""

SERVICES: Final[tuple[ServiceName, ...]] = get_args(ServiceName)
"""Every service name, in flow order."""

SYSTEM_TENANT_ID: Final = "zf-system"
"""Reserved tenant id for records that belong to no tenant (e.g. a dead letter whose input could
not be parsed). The gateway refuses to create a tenant with this id."""
