"""Use cases over ports: load state, call the domain, save, queue the events to publish.

Every handler takes its ports as keyword arguments, so tests pass fakes. Outputs go through the
outbox: written in the same transaction as the state change, published right after commit by
:func:`flush_outbox` (a decision's own event by :func:`publish_enqueued`, without reading it
back), and by the scheduler's sweep if the process died in between.
"""

from zapflow.compliance.handlers.consent import change_consent, record_inbound
from zapflow.compliance.handlers.decisions import decide_request, redecide_due
from zapflow.compliance.handlers.lookups import find_consent, find_decision, get_rules, put_rules
from zapflow.compliance.handlers.outbox import flush_outbox
from zapflow.compliance.handlers.sources import apply_channel_event, cancel_campaign

__all__ = [
    "apply_channel_event",
    "cancel_campaign",
    "change_consent",
    "decide_request",
    "find_consent",
    "find_decision",
    "flush_outbox",
    "get_rules",
    "put_rules",
    "record_inbound",
    "redecide_due",
]
