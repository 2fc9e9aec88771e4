"""Conversations context v1: assignment and status of conversations, owned by ingest.

Realtime uses these to decide which operators may see a conversation.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from zapflow.contracts.common import Actor
from zapflow.contracts.envelope import Event
from zapflow.contracts.types import ChannelId, UserId


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    CLOSED = "closed"


class ConversationAssigned(Event):
    """A conversation got a new assignee (or was unassigned when ``assignee`` is None)."""

    type: Literal["zf.conversations.assigned.v1"] = "zf.conversations.assigned.v1"
    conversation_id: UUID
    contact_id: UUID
    channel_id: ChannelId
    assignee: UserId | None = None
    previous_assignee: UserId | None = None
    assigned_by: Actor | None = None


class ConversationStatusChanged(Event):
    """A conversation was opened (``previous`` None), set pending, closed or reopened."""

    type: Literal["zf.conversations.status_changed.v1"] = "zf.conversations.status_changed.v1"
    conversation_id: UUID
    contact_id: UUID
    channel_id: ChannelId
    status: ConversationStatus
    previous: ConversationStatus | None = None
    changed_by: Actor | None = None
