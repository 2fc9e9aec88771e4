"""Deterministic ids: the same input always yields the same output ids, so a redelivered input
republishes events JetStream de-duplicates (``Nats-Msg-Id`` = event id) and rows that collide."""

from __future__ import annotations

from typing import Final
from uuid import UUID, uuid5

NAMESPACE: Final = UUID("6f1c0f3e-4a57-5d0e-9a53-0c8e3b1f7a21")
"""Namespace of every id compliance derives (UUIDv5)."""


def derived(kind: str, *parts: object) -> UUID:
    """``uuid5(NAMESPACE, "kind:part:part…")``."""
    return uuid5(NAMESPACE, ":".join((kind, *(str(p) for p in parts))))


def decision_id(message_id: UUID, seq: int) -> UUID:
    """The ``seq``-th decision on a message (1 first; a deferred send is decided again)."""
    return derived("decision", message_id, seq)


def decision_event_id(message_id: UUID, seq: int) -> UUID:
    """Id of the one event (approved, vetoed or deferred) the ``seq``-th decision publishes."""
    return derived("decision-event", message_id, seq)
