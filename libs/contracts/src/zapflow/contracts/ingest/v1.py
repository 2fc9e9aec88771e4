"""Commands to ingest v1 (work queue): operators acting on conversations through the gateway."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from zapflow.contracts.common import Actor
from zapflow.contracts.conversations.v1 import ConversationStatus
from zapflow.contracts.envelope import Event
from zapflow.contracts.types import UserId


class AssignConversation(Event):
    """Assign a conversation to an operator, or unassign it when ``assignee`` is None."""

    type: Literal["zf.ingest.assign_conversation.v1"] = "zf.ingest.assign_conversation.v1"
    conversation_id: UUID
    assignee: UserId | None = None
    requested_by: Actor


class ChangeConversationStatus(Event):
    """Set a conversation open, pending or closed."""

    type: Literal["zf.ingest.change_conversation_status.v1"] = (
        "zf.ingest.change_conversation_status.v1"
    )
    conversation_id: UUID
    status: ConversationStatus
    requested_by: Actor
