"""Value types shared by every contract.

Identifiers that travel inside subjects (tenant and channel ids) are restricted to characters that are
safe as a NATS subject token. Phone numbers are E.164 with the leading ``+``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

SUBJECT_TOKEN_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

TenantId = Annotated[str, StringConstraints(pattern=SUBJECT_TOKEN_PATTERN)]
"""A tenant's id: lowercase letters, digits, ``-`` and ``_``; safe as a subject token."""

ChannelId = Annotated[str, StringConstraints(pattern=SUBJECT_TOKEN_PATTERN)]
"""A sending/receiving number registered with a provider, as Zapflow names it."""

PhoneE164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]
"""A phone number in E.164 form, e.g. ``+5511999990001``."""

ProviderName = Annotated[str, StringConstraints(pattern=r"^(meta|evolution|zapi|wuzapi|simulator)$")]
"""The provider a channel talks to."""
