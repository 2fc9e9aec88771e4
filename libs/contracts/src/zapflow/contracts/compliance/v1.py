"""Commands to compliance v1 (work queue): things operators and integrators ask compliance to do."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from zapflow.contracts.common import Actor
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.envelope import Event
from zapflow.contracts.types import ChannelId, PhoneE164


class ConsentState(StrEnum):
    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"


class ChangeConsent(Event):
    """Record that a contact opted in or out (operator action, API call or list import)."""

    type: Literal["zf.compliance.change_consent.v1"] = "zf.compliance.change_consent.v1"
    phone: PhoneE164
    contact_id: UUID | None = None
    channel_id: ChannelId | None = Field(default=None, description="None: every channel.")
    state: ConsentState
    source: ConsentSource
    requested_by: Actor
    note: str | None = Field(default=None, max_length=500)
