"""The sender's pure core: pace per channel, order per recipient, attempt decisions.

No clock, no I/O, no framework: callers pass the time and a random source, so every rule is
tested with a fake clock (``services/sender/tests/unit``).
"""

from zapflow.sender.domain.attempts import (
    AttemptRecord,
    ErrorKind,
    GiveUp,
    Plan,
    Retry,
    RetryPolicy,
    State,
    plan,
)
from zapflow.sender.domain.lanes import Lanes
from zapflow.sender.domain.pace import AimdConfig, PaceConfig, PaceLimiter, local_day

__all__ = [
    "AimdConfig",
    "AttemptRecord",
    "ErrorKind",
    "GiveUp",
    "Lanes",
    "PaceConfig",
    "PaceLimiter",
    "Plan",
    "Retry",
    "RetryPolicy",
    "State",
    "local_day",
    "plan",
]
