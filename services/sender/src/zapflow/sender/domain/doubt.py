"""Sends *in doubt*, and how they are resolved. Pure decisions over plain values.

A send is in doubt when the replica that made its provider call died before recording the
answer: the provider may or may not have accepted it. Where the provider echoes the id we send
with a message in its status reports (Meta ``biz_opaque_callback_data`` = our message id), the
sender waits up to the channel's ``window_s`` (counted from the call) for a status naming the
message:

* one comes: the provider took the message — it is recorded as sent with the provider's id and
  **never** sent again;
* none comes: :func:`after_window` applies the channel's policy.

=============  ==============================================================================
policy         after the window without a status naming the message
=============  ==============================================================================
``resend``     send it again — if the provider echoes our id, only when statuses of *later*
               sends of the channel did arrive (webhooks demonstrably reach Zapflow, so the
               silence means the provider never took it); else dead-letter it. Residual risk:
               a duplicate when the provider took the message but its status came later than
               the window while later statuses arrived (a webhook retried by the provider
               after a failed delivery). Providers without an echo have no such evidence:
               ``resend`` resends blindly (a duplicate whenever the call had reached them).
``dead_letter`` ``SendFailed(in_doubt)`` and a dead letter for an operator to check and replay.
               Residual risk: a message the provider never took is not sent until replayed.
=============  ==============================================================================

Default policy: ``resend`` for providers that echo our id (Meta, the simulator), where the
evidence makes it safe; ``dead_letter`` for the others (Evolution, Z-API: nothing to wait for,
and most in-doubt calls did reach the provider). Providers that de-duplicate by our id (WuzAPI)
are resent at once (``attempts.plan``), with no waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from zapflow.contracts.channels.v1 import InDoubtPolicy, InDoubtSettings

ECHOING_PROVIDERS: Final = frozenset({"meta", "simulator"})
"""Providers whose status reports echo the id we send with a message."""


class AfterWindow(StrEnum):
    RESEND = "resend"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class InDoubtRule:
    """The channel's rule: how long to wait for a status, and what to do without one."""

    window_s: float
    policy: InDoubtPolicy
    echoes: bool
    """The provider names the message in its statuses (something to wait for)."""


def in_doubt_rule(settings: InDoubtSettings, provider: str, default_window_s: float) -> InDoubtRule:
    echoes = provider in ECHOING_PROVIDERS
    default = InDoubtPolicy.RESEND if echoes else InDoubtPolicy.DEAD_LETTER
    return InDoubtRule(
        window_s=settings.window_s if settings.window_s is not None else default_window_s,
        policy=settings.policy or default,
        echoes=echoes,
    )


def after_window(rule: InDoubtRule, *, channel_heard_after_call: bool) -> AfterWindow:
    """No status named the message within the window: resend or dead-letter it.

    ``channel_heard_after_call``: a status of the channel reported after the call must have
    ended reached Zapflow (evidence that webhooks flow, so this message's would have too).
    """
    if rule.policy is InDoubtPolicy.DEAD_LETTER:
        return AfterWindow.DEAD_LETTER
    if rule.echoes and not channel_heard_after_call:
        return AfterWindow.DEAD_LETTER  # silence proves nothing when nothing is heard
    return AfterWindow.RESEND
