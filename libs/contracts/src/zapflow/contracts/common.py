"""Small value types shared by several contexts: who acted, and why a send exists."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from zapflow.contracts.envelope import Contract


class ActorKind(StrEnum):
    OPERATOR = "operator"
    API_KEY = "api_key"
    SYSTEM = "system"
    CUSTOMER = "customer"


class Actor(Contract):
    """Who asked for something: an operator, an API key, the system, or a customer (keyword)."""

    kind: ActorKind
    id: str = Field(min_length=1, max_length=128, description="User, API key or service id.")


class SendOrigin(StrEnum):
    """Where an outbound message came from."""

    OPERATOR = "operator"
    CAMPAIGN = "campaign"
    API = "api"


class SendPriority(StrEnum):
    """Scheduling hint for the sender within one channel: operator replies jump campaign bulk."""

    HIGH = "high"
    NORMAL = "normal"
    BULK = "bulk"
