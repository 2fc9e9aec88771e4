"""Consent records and which one is in force for a channel.

A contact may have a tenant-wide record (``channel_id`` None) and per-channel records; for a given
channel the most recent of the tenant-wide one and that channel's one wins. So "opt out of
everything" then "opt in on channel A" allows A only, and the reverse order blocks A again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.consent.v1 import ConsentSource


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    channel_id: str | None
    state: ConsentState
    changed_at: datetime
    source: ConsentSource


def effective_consent(records: Iterable[ConsentRecord], channel_id: str) -> ConsentRecord | None:
    """The record in force on ``channel_id``: the latest tenant-wide or channel-specific one."""
    relevant = [r for r in records if r.channel_id is None or r.channel_id == channel_id]
    if not relevant:
        return None
    return max(relevant, key=lambda r: (r.changed_at, r.channel_id is not None))
