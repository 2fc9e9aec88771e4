"""Deterministic ids: the same input always yields the same id.

Events produced from a raw webhook are named by the raw event id and the item they come from
(``message/0``, ``status/3/…``), so reprocessing a redelivered webhook can only produce ids
JetStream has already seen. Stored messages are named by (channel, provider message id), their
natural identity.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID, uuid5

EVENTS_NS: Final = UUID("6f0c2d43-7a51-4c39-9a0e-2f8d1b64c0a7")
MESSAGES_NS: Final = UUID("b4a3e1c2-55d6-4f0a-8c1e-93d7a2f6e815")


def event_id(source_event_id: UUID, key: str) -> UUID:
    """Id of the event derived from raw event ``source_event_id`` for item ``key``."""
    return uuid5(EVENTS_NS, f"{source_event_id}/{key}")


def message_id(channel_id: str, provider_message_id: str) -> UUID:
    """Id of the message ``provider_message_id`` received on ``channel_id``."""
    return uuid5(MESSAGES_NS, f"{channel_id}\x00{provider_message_id}")
