"""The per-channel webhook flood limit."""

import pytest

from zapflow.gateway.ratelimit import FloodGuard, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_its_burst_then_says_how_long_to_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token at 2/s


def test_tokens_refill_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, burst=2, clock=clock)
    bucket.take()
    bucket.take()
    clock.now += 0.1  # one token back
    assert bucket.take() == 0.0
    assert bucket.take() > 0
    clock.now += 60  # long idle: still only the burst
    assert [bucket.take() for _ in range(3)][:2] == [0.0, 0.0]
    assert bucket.take() > 0


def test_a_refused_request_does_not_consume_anything() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    bucket.take()
    for _ in range(5):
        assert bucket.take() == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.take() == 0.0


def test_each_channel_has_its_own_bucket() -> None:
    clock = Clock()
    guard = FloodGuard(rate=1.0, burst=1, clock=clock)
    assert guard.take("a") == 0.0
    assert guard.take("a") > 0
    assert guard.take("b") == 0.0
    guard.forget("a")
    assert guard.take("a") == 0.0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(rate, burst)
