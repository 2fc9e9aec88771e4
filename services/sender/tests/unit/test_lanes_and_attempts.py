"""Per-recipient lanes and the attempt-record decisions (plan, retry policy)."""

import random
from uuid import uuid4

import pytest

from zapflow.sender.domain import (
    AttemptRecord,
    ErrorKind,
    GiveUp,
    Lanes,
    Plan,
    Retry,
    RetryPolicy,
    State,
    plan,
)


def test_lanes_work_one_head_per_recipient_in_request_order() -> None:
    lanes: Lanes[str, str] = Lanes()
    assert lanes.push("ana", 1, "a1") is True  # new lane: start it
    assert lanes.push("bruno", 2, "b1") is True
    assert lanes.push("ana", 3, "a2") is False  # queued behind a1
    assert lanes.head("ana") == "a1"
    assert lanes.pop("ana") == "a2"
    assert lanes.pop("ana") is None
    assert "ana" not in lanes
    assert len(lanes) == 1


def test_a_redelivery_is_put_back_in_sequence_order_but_never_before_the_head() -> None:
    lanes: Lanes[str, str] = Lanes()
    lanes.push("ana", 5, "a5")  # being worked on
    lanes.push("ana", 9, "a9")
    lanes.push("ana", 7, "a7")
    lanes.push("ana", 2, "a2")  # older than the head: right after it
    assert list(lanes.items()) == ["a5", "a2", "a7", "a9"]


def test_a_duplicate_delivery_is_ignored() -> None:
    lanes: Lanes[str, str] = Lanes()
    lanes.push("ana", 5, "a5")
    lanes.push("ana", 6, "a6")
    assert lanes.push("ana", 5, "dup") is False
    assert lanes.push("ana", 6, "dup") is False
    assert lanes.lane_length("ana") == 2


def record(
    state: State, *, since_last_attempt_s: float = 0.0, provider_message_id: str | None = None
) -> AttemptRecord:
    return AttemptRecord(
        message_id=uuid4(),
        state=state,
        attempts=1,
        since_last_attempt_s=since_last_attempt_s,
        provider_message_id=provider_message_id,
    )


@pytest.mark.parametrize(
    ("rec", "replay", "expected"),
    [
        (None, None, Plan.SEND),
        (record(State.ACCEPTED, provider_message_id="wamid.1"), None, Plan.REPUBLISH_SENT),
        (record(State.FAILED), None, Plan.REPUBLISH_FAILED),
        (record(State.RETRYING), None, Plan.SEND),
        (record(State.SENDING, since_last_attempt_s=1.0), None, Plan.WAIT_IN_FLIGHT),
        (record(State.SENDING, since_last_attempt_s=20.0), None, Plan.IN_DOUBT),
    ],
)
def test_plan_follows_the_record(rec: AttemptRecord | None, replay: None, expected: Plan) -> None:
    assert plan(rec, replay_of=replay, in_doubt_after_s=12, idempotent_provider=False) == expected


def test_an_accepted_message_is_never_sent_again_even_when_replayed() -> None:
    accepted = record(State.ACCEPTED, provider_message_id="wamid.1")
    assert plan(accepted, replay_of=uuid4(), in_doubt_after_s=1, idempotent_provider=True) == (
        Plan.REPUBLISH_SENT
    )


def test_a_new_replay_of_a_failed_message_starts_again_but_its_redelivery_does_not() -> None:
    dead_letter = uuid4()
    failed = record(State.FAILED)
    assert plan(failed, replay_of=dead_letter, in_doubt_after_s=1, idempotent_provider=False) == (
        Plan.RESET_FOR_REPLAY
    )
    failed_again = AttemptRecord(
        message_id=uuid4(), state=State.FAILED, attempts=3, replay_of=dead_letter
    )
    assert plan(
        failed_again, replay_of=dead_letter, in_doubt_after_s=1, idempotent_provider=False
    ) == (Plan.REPUBLISH_FAILED)


def test_in_doubt_is_resent_only_to_idempotent_providers() -> None:
    stale = record(State.SENDING, since_last_attempt_s=30.0)
    assert plan(stale, replay_of=None, in_doubt_after_s=12, idempotent_provider=True) == Plan.SEND


def test_transient_failures_back_off_exponentially_with_jitter_then_give_up() -> None:
    policy = RetryPolicy(max_attempts=4, base_s=1.0, cap_s=5.0)
    rng = random.Random(3)
    delays = []
    for attempts in (1, 2, 3):
        failed = AttemptRecord(message_id=uuid4(), state=State.RETRYING, attempts=attempts)
        step = policy.after_failure(ErrorKind.TRANSIENT, failed, retry_after=None, rng=rng)
        assert isinstance(step, Retry)
        delays.append(step.delay_s)
    # equal jitter: half of the ceiling base·2^(n-1), plus up to the other half
    assert delays[0] == pytest.approx(0.75, abs=0.25)
    assert delays[1] == pytest.approx(1.5, abs=0.5)
    assert delays[2] == pytest.approx(3.0, abs=1.0)
    last = AttemptRecord(message_id=uuid4(), state=State.RETRYING, attempts=4)
    assert policy.after_failure(ErrorKind.TRANSIENT, last, retry_after=None, rng=rng) == GiveUp(
        exhausted=True
    )


def test_rate_limits_do_not_use_up_attempts_but_have_a_time_budget() -> None:
    policy = RetryPolicy(max_attempts=2, rate_limit_budget_s=60)
    rng = random.Random(1)
    many = AttemptRecord(
        message_id=uuid4(),
        state=State.RETRYING,
        attempts=30,
        rate_limited=29,
        since_first_attempt_s=10,
    )
    step = policy.after_failure(ErrorKind.CHANNEL_RATE_LIMIT, many, retry_after=2.0, rng=rng)
    assert isinstance(step, Retry)
    assert step.delay_s >= 2.0
    pair = policy.after_failure(ErrorKind.RECIPIENT_RATE_LIMIT, many, retry_after=6.0, rng=rng)
    assert isinstance(pair, Retry)
    assert pair.delay_s >= 6.0
    old = AttemptRecord(
        message_id=uuid4(),
        state=State.RETRYING,
        attempts=30,
        rate_limited=29,
        since_first_attempt_s=61,
    )
    assert policy.after_failure(ErrorKind.CHANNEL_RATE_LIMIT, old, retry_after=None, rng=rng) == (
        GiveUp(exhausted=True)
    )


def test_permanent_errors_give_up_at_once_without_a_dead_letter() -> None:
    step = RetryPolicy().after_failure(
        ErrorKind.PERMANENT, record(State.RETRYING), retry_after=None, rng=random.Random()
    )
    assert step == GiveUp(exhausted=False)
