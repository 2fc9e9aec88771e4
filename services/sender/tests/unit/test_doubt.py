"""In-doubt rules (per provider defaults, the channel's settings, the decision after the window)
and the memory budget of a channel."""

from __future__ import annotations

import pytest

from zapflow.contracts.channels.v1 import InDoubtPolicy, InDoubtSettings
from zapflow.sender.domain.doubt import AfterWindow, after_window, in_doubt_rule
from zapflow.sender.parking import Budget


@pytest.mark.parametrize(
    ("provider", "policy", "echoes"),
    [
        ("meta", InDoubtPolicy.RESEND, True),
        ("simulator", InDoubtPolicy.RESEND, True),
        ("evolution", InDoubtPolicy.DEAD_LETTER, False),
        ("zapi", InDoubtPolicy.DEAD_LETTER, False),
    ],
)
def test_defaults_follow_what_the_provider_tells(
    provider: str, policy: InDoubtPolicy, echoes: bool
) -> None:
    rule = in_doubt_rule(InDoubtSettings(), provider, 300.0)
    assert (rule.window_s, rule.policy, rule.echoes) == (300.0, policy, echoes)


def test_the_channel_overrides_window_and_policy() -> None:
    settings = InDoubtSettings(policy=InDoubtPolicy.DEAD_LETTER, window_s=42)
    rule = in_doubt_rule(settings, "meta", 300.0)
    assert (rule.window_s, rule.policy) == (42, InDoubtPolicy.DEAD_LETTER)


def test_resend_needs_evidence_where_the_provider_could_have_named_the_message() -> None:
    meta = in_doubt_rule(InDoubtSettings(), "meta", 300.0)
    assert after_window(meta, channel_heard_after_call=True) is AfterWindow.RESEND
    assert after_window(meta, channel_heard_after_call=False) is AfterWindow.DEAD_LETTER
    blind = in_doubt_rule(InDoubtSettings(policy=InDoubtPolicy.RESEND), "zapi", 300.0)
    assert after_window(blind, channel_heard_after_call=False) is AfterWindow.RESEND
    careful = in_doubt_rule(InDoubtSettings(policy=InDoubtPolicy.DEAD_LETTER), "meta", 300.0)
    assert after_window(careful, channel_heard_after_call=True) is AfterWindow.DEAD_LETTER


def test_a_channels_memory_budget_is_seconds_of_its_pace_within_bounds() -> None:
    budget = Budget(horizon_s=10, min_messages=16, max_messages=250)
    assert budget.of(None) == 16  # before its first send: the minimum
    assert budget.of(0.001) == 16
    assert budget.of(8) == 80
    assert budget.of(80) == 250
