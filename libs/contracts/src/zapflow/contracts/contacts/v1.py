"""Contacts context v1: the customers ingest knows, as they appear or change."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from zapflow.contracts.envelope import Event
from zapflow.contracts.model import Party


class ContactUpdated(Event):
    """A contact was created or one of its identity fields (phone, wa_id, lid, name) changed."""

    type: Literal["zf.contacts.updated.v1"] = "zf.contacts.updated.v1"
    contact_id: UUID
    party: Party = Field(description="The contact's identity after the change.")
    created: bool = Field(default=False, description="True when the contact is new.")
    changed: tuple[str, ...] = Field(default=(), description="Names of the fields that changed.")
