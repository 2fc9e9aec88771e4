"""Consent context v1: opt-ins and opt-outs, owned by compliance.

Compliance publishes these when it detects a keyword in an inbound message or executes a
``zf.compliance.change_consent`` command. ``channel_id`` None means every channel of the tenant.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from zapflow.contracts.common import Actor
from zapflow.contracts.envelope import Event
from zapflow.contracts.types import ChannelId, PhoneE164


class ConsentSource(StrEnum):
    """How a consent change came about."""

    KEYWORD = "keyword"
    OPERATOR = "operator"
    API = "api"
    IMPORT = "import"
    PROVIDER = "provider"


class ContactOptedOut(Event):
    """A contact stopped accepting messages (on one channel or all of them)."""

    type: Literal["zf.consent.opted_out.v1"] = "zf.consent.opted_out.v1"
    phone: PhoneE164
    contact_id: UUID | None = None
    channel_id: ChannelId | None = Field(default=None, description="None: every channel.")
    source: ConsentSource
    keyword: str | None = Field(default=None, description="The keyword matched, if any.")
    actor: Actor | None = None


class ContactOptedIn(Event):
    """A contact agreed (again) to receive messages (on one channel or all of them)."""

    type: Literal["zf.consent.opted_in.v1"] = "zf.consent.opted_in.v1"
    phone: PhoneE164
    contact_id: UUID | None = None
    channel_id: ChannelId | None = Field(default=None, description="None: every channel.")
    source: ConsentSource
    keyword: str | None = Field(default=None, description="The keyword matched, if any.")
    actor: Actor | None = None
