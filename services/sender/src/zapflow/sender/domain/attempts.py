"""The life of one send attempt record, and what to do next. Pure decisions over plain values.

A ``send_attempts`` row per message is written **before** the provider call (state ``sending``,
attempts + 1) and **after** it (``accepted`` with the provider's id, ``retrying`` or ``failed``).
A redelivered message therefore finds out what already happened:

====================  ===========================================================================
row                   plan
====================  ===========================================================================
none                  send (first attempt)
``accepted``          republish ``SendSucceeded``; never call the provider again
``failed``            republish ``SendFailed`` — unless the message is a new dead-letter replay,
                      which starts a new round of attempts
``retrying``          continue the attempts
``sending``           another owner may still be in the call: wait until the call must have ended
                      (``in_doubt_after_s`` after it started), then it is *in doubt*: the
                      provider may or may not have accepted it. Idempotent providers resend;
                      for the others it is resolved by the provider's own statuses, else by the
                      channel's policy (``zapflow.sender.domain.doubt``).
====================  ===========================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class State(StrEnum):
    SENDING = "sending"
    RETRYING = "retrying"
    ACCEPTED = "accepted"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """A ``send_attempts`` row as read; ages are measured on the database clock."""

    message_id: UUID
    state: State
    attempts: int
    provider: str = "meta"
    rate_limited: int = 0
    provider_message_id: str | None = None
    reason: str | None = None
    permanent: bool | None = None
    error_code: str | None = None
    error_text: str | None = None
    replay_of: UUID | None = None
    since_last_attempt_s: float = 0.0
    since_first_attempt_s: float = 0.0

    @property
    def transient_failures(self) -> int:
        """Provider calls that failed for reasons other than rate limits (or are in flight)."""
        return self.attempts - self.rate_limited


class Plan(StrEnum):
    SEND = "send"
    REPUBLISH_SENT = "republish_sent"
    REPUBLISH_FAILED = "republish_failed"
    RESET_FOR_REPLAY = "reset_for_replay"
    WAIT_IN_FLIGHT = "wait_in_flight"
    IN_DOUBT = "in_doubt"


def plan(
    record: AttemptRecord | None,
    *,
    replay_of: UUID | None,
    in_doubt_after_s: float,
    idempotent_provider: bool,
) -> Plan:
    """What to do with a message, given what its record says already happened."""
    if record is None:
        return Plan.SEND
    if record.state is State.ACCEPTED:
        return Plan.REPUBLISH_SENT
    if record.state is State.FAILED:
        is_new_replay = replay_of is not None and replay_of != record.replay_of
        return Plan.RESET_FOR_REPLAY if is_new_replay else Plan.REPUBLISH_FAILED
    if record.state is State.RETRYING:
        return Plan.SEND
    if record.since_last_attempt_s < in_doubt_after_s:
        return Plan.WAIT_IN_FLIGHT
    return Plan.SEND if idempotent_provider else Plan.IN_DOUBT


class ErrorKind(StrEnum):
    """How a failed provider call is retried."""

    CHANNEL_RATE_LIMIT = "channel_rate_limit"  # the number's throughput: slow the whole channel
    RECIPIENT_RATE_LIMIT = "recipient_rate_limit"  # pair rate: only this conversation waits
    TRANSIENT = "transient"  # timeouts, 5xx, unreachable
    PERMANENT = "permanent"  # never retried


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    exhausted: bool
    """True when retries ran out (the message is dead-lettered); False for a permanent error."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; rate limits have a time budget instead of a count.

    ``max_attempts`` bounds calls that failed transiently (timeouts, 5xx); rate-limited calls do
    not count against it, since the provider asked to slow down, not that the message is bad:
    they are retried until ``rate_limit_budget_s`` passed since the first attempt.
    """

    max_attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    rate_limit_budget_s: float = 900.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Equal-jitter exponential delay after the ``failures``-th failure (1-based)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, failures - 1))
        return float(ceiling / 2 + rng.uniform(0, ceiling / 2))

    def after_failure(
        self,
        kind: ErrorKind,
        record: AttemptRecord,
        *,
        retry_after: float | None,
        rng: random.Random,
    ) -> Retry | GiveUp:
        """Retry (after how long) or give up, once ``record`` counts the failed call."""
        if kind is ErrorKind.PERMANENT:
            return GiveUp(exhausted=False)
        if kind is ErrorKind.TRANSIENT:
            failures = record.transient_failures
            if failures >= self.max_attempts:
                return GiveUp(exhausted=True)
            delay = self.backoff(failures, rng)
        else:
            if record.since_first_attempt_s >= self.rate_limit_budget_s:
                return GiveUp(exhausted=True)
            delay = self.backoff(min(record.rate_limited, 6), rng)
        return Retry(max(delay, retry_after or 0.0))
