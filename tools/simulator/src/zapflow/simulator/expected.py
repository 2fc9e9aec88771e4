"""Zapflow's side of an audit: send events (in stream order) → :class:`ExpectedSend` list. Pure.

``send.requested`` fixes the request order (a repeated request keeps its first place);
``sent``, ``failed`` and ``vetoed`` set the outcome (``sent`` wins over a ``failed`` seen for the
same message, since the provider did take it once). ``deferred`` leaves a request pending.
"""

from __future__ import annotations

from collections.abc import Iterable

from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import SendFailed, SendRequested, SendSucceeded, SendVetoed
from zapflow.simulator.audit import ExpectedSend, Outcome


def expected_sends(
    events: Iterable[Event],
    *,
    tenant_id: str | None = None,
    channels: frozenset[str] | None = None,
) -> list[ExpectedSend]:
    """The requests among ``events`` with their outcomes, in request order, filtered by tenant
    and channel when given."""
    requested: dict[str, SendRequested] = {}
    outcomes: dict[str, Outcome] = {}
    provider_ids: dict[str, str] = {}
    for event in events:
        if tenant_id is not None and event.tenant_id != tenant_id:
            continue
        if isinstance(event, SendRequested):
            requested.setdefault(str(event.request.message_id), event)
        elif isinstance(event, SendSucceeded):
            outcomes[str(event.message_id)] = "sent"
            provider_ids[str(event.message_id)] = event.provider_message_id
        elif isinstance(event, SendFailed):
            _settle(outcomes, str(event.message_id), "failed")
        elif isinstance(event, SendVetoed):
            _settle(outcomes, str(event.request.message_id), "vetoed")
    return [
        ExpectedSend(
            message_id=message_id,
            channel_id=event.request.channel_id,
            recipient=event.request.to.address,
            outcome=outcomes.get(message_id, "pending"),
            provider_message_id=provider_ids.get(message_id),
        )
        for message_id, event in requested.items()
        if channels is None or event.request.channel_id in channels
    ]


def _settle(outcomes: dict[str, Outcome], message_id: str, outcome: Outcome) -> None:
    if outcomes.get(message_id) != "sent":
        outcomes[message_id] = outcome
