"""The send use case over fakes: records before and after the call, outcomes, retries, doubt."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from nats.js.api import PubAck

from zapflow.contracts.channels.v1 import (
    ChannelSettings,
    InDoubtPolicy,
    InDoubtSettings,
    PaceSettings,
)
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import TextContent
from zapflow.contracts.envelope import Event
from zapflow.contracts.model import DeliveryStatus
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.sending.v1 import (
    FailureReason,
    Recipient,
    SendFailed,
    SendRequest,
    SendSucceeded,
)
from zapflow.providers import SendResult
from zapflow.providers.errors import (
    AuthenticationError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
)
from zapflow.sender import handlers
from zapflow.sender.domain import AttemptRecord, RetryPolicy, State
from zapflow.sender.errors import InDoubtError, RetriesExhaustedError, UnknownChannelError
from zapflow.sender.outcomes import Ack, DeadLetter
from zapflow.sender.ports import NewAttempt, PaceSlot

NOW = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)


class FakeStore:
    """``send_attempts`` in a dict, with the same guarded transitions as the SQL."""

    def __init__(self) -> None:
        self.rows: dict[UUID, AttemptRecord] = {}
        self.writes: list[str] = []

    async def lookup(self, message_ids: object) -> dict[UUID, AttemptRecord]:
        return dict(self.rows)

    async def get(self, message_id: UUID) -> AttemptRecord | None:
        return self.rows.get(message_id)

    async def begin(self, attempt: NewAttempt) -> AttemptRecord | None:
        self.writes.append("begin")
        if attempt.message_id in self.rows:
            return None
        row = AttemptRecord(attempt.message_id, State.SENDING, 1, attempt.provider)
        self.rows[attempt.message_id] = row
        return row

    async def next_attempt(self, message_id: UUID, *, expected: State) -> AttemptRecord | None:
        self.writes.append("next")
        row = self.rows[message_id]
        if row.state is not expected or expected not in (State.RETRYING, State.SENDING):
            return None
        return self._put(replace(row, state=State.SENDING, attempts=row.attempts + 1))

    async def record_accepted(self, message_id: UUID, provider_message_id: str) -> AttemptRecord:
        self.writes.append("accepted")
        row = self.rows[message_id]
        return self._put(
            replace(row, state=State.ACCEPTED, provider_message_id=provider_message_id)
        )

    async def record_retry(
        self, message_id: UUID, *, rate_limited: bool, code: str | None, text: str
    ) -> AttemptRecord:
        self.writes.append("retry")
        row = self.rows[message_id]
        return self._put(
            replace(
                row,
                state=State.RETRYING,
                rate_limited=row.rate_limited + rate_limited,
                error_code=code,
                error_text=text,
            )
        )

    async def record_failed(
        self, attempt: NewAttempt, *, reason: str, permanent: bool, code: str | None, text: str
    ) -> AttemptRecord:
        self.writes.append("failed")
        row = self.rows.get(attempt.message_id) or AttemptRecord(
            attempt.message_id, State.FAILED, 0, attempt.provider
        )
        if row.state is State.ACCEPTED:
            return row
        return self._put(
            replace(
                row,
                state=State.FAILED,
                reason=reason,
                permanent=permanent,
                error_code=code,
                error_text=text,
            )
        )

    async def reset_for_replay(self, message_id: UUID, replay_of: UUID) -> None:
        row = self.rows[message_id]
        if row.state is State.FAILED:
            self._put(
                replace(row, state=State.RETRYING, attempts=0, rate_limited=0, replay_of=replay_of)
            )

    async def daily_count(self, tenant_id: str, channel_id: str, day: date) -> int:
        return 0

    async def pace_factor(self, tenant_id: str, channel_id: str) -> float | None:
        return None

    async def save_pace_factor(self, tenant_id: str, channel_id: str, factor: float) -> None:
        return None

    def _put(self, row: AttemptRecord) -> AttemptRecord:
        self.rows[row.message_id] = row
        return row


@dataclass
class FakeProvider:
    answers: list[ProviderError | None] = field(default_factory=list)
    calls: int = 0

    async def send(
        self,
        settings: ChannelSettings,
        credentials: ChannelCredentialsReply,
        request: SendRequest,
        *,
        before_write: Callable[[], Awaitable[None]],
    ) -> SendResult:
        await before_write()
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return SendResult(f"wamid.{self.calls}", DeliveryStatus.QUEUED)


@dataclass
class FakePublisher:
    events: list[Event] = field(default_factory=list)

    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> PubAck:
        self.events.append(event)
        return PubAck(stream="ZF_SENDING", seq=len(self.events))


@dataclass
class FakeSlot:
    pacer: FakePacer
    committed: bool = False

    async def commit(self) -> None:
        self.committed = True
        self.pacer.committed += 1

    def release(self) -> None:
        self.pacer.released += 1


@dataclass
class FakePacer:
    committed: int = 0
    released: int = 0
    limited: list[float | None] = field(default_factory=list)

    async def acquire(self, *, priority: int, counts_toward_cap: bool) -> PaceSlot:
        return FakeSlot(self)

    def rate_limited(self, retry_after: float | None) -> None:
        self.limited.append(retry_after)


class FakeGuard:
    active: bool = True

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        yield


@dataclass
class FakeChannels:
    known: dict[tuple[str, str], ChannelSettings] = field(default_factory=dict)

    async def settings(self, tenant_id: str, channel_id: str) -> ChannelSettings | None:
        return self.known.get((tenant_id, channel_id))


@dataclass
class FakeCredentials:
    reply: ChannelCredentialsReply = field(
        default_factory=lambda: ChannelCredentialsReply(
            found=True, provider="meta", credentials={"access_token": "t"}
        )
    )
    invalidated: int = 0

    async def get(self, tenant_id: str, channel_id: str) -> ChannelCredentialsReply:
        return self.reply

    def invalidate(self, tenant_id: str, channel_id: str) -> None:
        self.invalidated += 1


@dataclass
class FakeStatuses:
    """Provider statuses naming messages (``named``), and the latest status time of the channel
    (``heard``); ``polls`` counts how often a watch was asked."""

    named: dict[UUID, str] = field(default_factory=dict)
    heard: datetime | None = None
    after_polls: int = 0
    polls: int = 0
    watched: list[tuple[UUID, datetime]] = field(default_factory=list)
    open: int = 0

    @contextlib.asynccontextmanager
    async def watch(
        self, tenant_id: str, channel_id: str, message_id: UUID, *, since: datetime
    ) -> AsyncIterator[FakeStatuses.Watch]:
        self.watched.append((message_id, since))
        self.open += 1
        try:
            yield FakeStatuses.Watch(self, message_id)
        finally:
            self.open -= 1

    @dataclass
    class Watch:
        statuses: FakeStatuses
        message_id: UUID

        async def named(self, timeout_s: float) -> str | None:
            self.statuses.polls += 1
            if self.statuses.polls <= self.statuses.after_polls:
                return None
            return self.statuses.named.get(self.message_id)

        def heard_since(self, at: datetime) -> bool:
            return self.statuses.heard is not None and self.statuses.heard >= at


@dataclass
class World:
    store: FakeStore = field(default_factory=FakeStore)
    provider: FakeProvider = field(default_factory=FakeProvider)
    publish: FakePublisher = field(default_factory=FakePublisher)
    pacer: FakePacer = field(default_factory=FakePacer)
    channels: FakeChannels = field(default_factory=FakeChannels)
    credentials: FakeCredentials = field(default_factory=FakeCredentials)
    statuses: FakeStatuses = field(default_factory=FakeStatuses)
    slept: list[float] = field(default_factory=list)

    def deps(self, **kw: object) -> handlers.Deps:
        async def pacer_for(*_: object) -> FakePacer:
            return self.pacer

        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        return handlers.Deps(
            store=self.store,
            channels=self.channels,
            credentials=self.credentials,
            provider=self.provider,
            publish=self.publish,
            pacer_for=pacer_for,
            guard=kw.pop("guard", FakeGuard()),
            rng=random.Random(1),
            sleep=sleep,
            clock=lambda: NOW,
            statuses=self.statuses,
            **kw,  # type: ignore[arg-type]
        )

    def job(
        self,
        approved: SendApproved,
        replay_of: UUID | None = None,
        *,
        provider: str = "meta",
        in_doubt: InDoubtSettings | None = None,
    ) -> handlers.Job:
        settings = ChannelSettings(
            channel_id=approved.request.channel_id,
            provider=provider,
            provider_account="123",
            base_url="http://127.0.0.1:1/v21.0",
            pace=PaceSettings(rate_per_second=80),
            in_doubt=in_doubt or InDoubtSettings(),
        )
        self.channels.known[(approved.tenant_id, approved.request.channel_id)] = settings
        return handlers.Job(approved, seq=1, replay_of=replay_of)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.publish.events if isinstance(e, kind)]


def approved(**request: object) -> SendApproved:
    send = SendRequest(
        message_id=uuid4(),
        channel_id="c1",
        to=Recipient(phone="+5511999990001"),
        content=TextContent(body="oi"),
        origin=SendOrigin.API,
        idempotency_key="k",
        **request,  # type: ignore[arg-type]
    )
    return SendApproved(tenant_id="t1", request=send, decision_id=uuid4(), correlation_id=uuid4())


async def test_a_send_is_recorded_before_and_after_the_call_then_published() -> None:
    w = World()
    job = w.job(approved())
    assert await handlers.deliver(job, w.deps()) == Ack()
    assert w.store.writes == ["begin", "accepted"]
    [sent] = w.of(SendSucceeded)
    assert isinstance(sent, SendSucceeded)
    assert (sent.provider_message_id, sent.attempts, sent.provider) == ("wamid.1", 1, "meta")
    assert sent.correlation_id == job.approved.correlation_id
    assert sent.causation_id == job.approved.id
    assert w.pacer.committed == 1


async def test_a_redelivered_accepted_message_republishes_the_same_event_without_a_call() -> None:
    w = World()
    job = w.job(approved())
    await handlers.deliver(job, w.deps())
    await handlers.deliver(w.job(job.approved), w.deps())
    assert w.provider.calls == 1
    first, again = w.of(SendSucceeded)
    assert first.id == again.id  # same Nats-Msg-Id: de-duplicated downstream


async def test_a_permanent_error_fails_at_once_and_invalidates_rotated_credentials() -> None:
    w = World()
    w.provider.answers = [
        AuthenticationError("meta error 190 (HTTP 401): token", provider="meta", code="190")
    ]
    assert await handlers.deliver(w.job(approved()), w.deps()) == Ack()
    [failed] = w.of(SendFailed)
    assert isinstance(failed, SendFailed)
    assert (failed.reason, failed.permanent, failed.error_code) == (
        FailureReason.AUTH_FAILED,
        True,
        "190",
    )
    assert w.credentials.invalidated == 1


async def test_transient_errors_back_off_then_dead_letter_after_the_last_attempt() -> None:
    w = World()
    w.provider.answers = [ProviderTimeoutError("meta request timed out", provider="meta")] * 3
    outcome = await handlers.deliver(w.job(approved()), w.deps(policy=RetryPolicy(max_attempts=3)))
    assert isinstance(outcome, DeadLetter)
    assert isinstance(outcome.error, RetriesExhaustedError)
    assert outcome.attempts == 3
    assert len(w.slept) == 2  # in place, between the attempts
    [failed] = w.of(SendFailed)
    assert isinstance(failed, SendFailed)
    assert (failed.permanent, failed.reason) == (False, FailureReason.PROVIDER_UNAVAILABLE)


async def test_a_channel_rate_limit_slows_the_pacer_and_does_not_use_up_attempts() -> None:
    w = World()
    limited = RateLimitedError("meta error 130429", provider="meta", code="130429", retry_after=2)
    w.provider.answers = [limited] * 5
    deps = w.deps(policy=RetryPolicy(max_attempts=2))
    assert await handlers.deliver(w.job(approved()), deps) == Ack()
    assert w.pacer.limited == [2] * 5
    assert all(s >= 2 for s in w.slept)


async def test_a_pair_rate_limit_waits_without_slowing_the_channel() -> None:
    w = World()
    w.provider.answers = [
        RateLimitedError("meta error 131056", provider="meta", code="131056", retry_after=6)
    ]
    assert await handlers.deliver(w.job(approved()), w.deps()) == Ack()
    assert w.pacer.limited == []
    assert w.slept[0] >= 6


async def test_an_attempt_of_a_lost_owner_is_awaited_then_failed_as_in_doubt() -> None:
    w = World()
    job = w.job(approved())
    w.store.rows[job.message_id] = AttemptRecord(job.message_id, State.SENDING, 1, "meta")
    outcome = await handlers.deliver(job, w.deps(in_doubt_after_s=1.0))
    assert isinstance(outcome, DeadLetter)
    assert isinstance(outcome.error, InDoubtError)
    assert sum(w.slept) >= 1.0  # waited for the other owner's call to end
    assert w.provider.calls == 0  # at most once: never resent blindly
    [failed] = w.of(SendFailed)
    assert isinstance(failed, SendFailed)
    assert (failed.error_code, failed.permanent) == ("in_doubt", False)


def in_doubt(w: World, job: handlers.Job, *, seconds_ago: float = 20.0) -> None:
    """The previous owner died ``seconds_ago`` into the call of ``job``'s first attempt."""
    w.store.rows[job.message_id] = AttemptRecord(
        job.message_id, State.SENDING, 1, "meta", since_last_attempt_s=seconds_ago
    )


async def test_an_in_doubt_send_named_by_a_provider_status_is_recorded_sent_never_resent() -> None:
    w = World()
    job = w.job(approved())
    in_doubt(w, job)
    w.statuses.named[job.message_id] = "wamid.TOOK"
    w.statuses.after_polls = 3  # the status comes a few polls into the wait
    assert await handlers.deliver(job, w.deps(in_doubt_after_s=12.0)) == Ack()
    assert w.provider.calls == 0
    assert w.store.rows[job.message_id].state is State.ACCEPTED
    [sent] = w.of(SendSucceeded)
    assert isinstance(sent, SendSucceeded)
    assert sent.provider_message_id == "wamid.TOOK"
    [(watched, since)] = w.statuses.watched
    assert (watched, since) == (job.message_id, NOW - timedelta(seconds=20))  # from the call
    assert w.statuses.open == 0


async def test_an_unnamed_in_doubt_send_is_resent_when_later_statuses_of_the_channel_came() -> None:
    w = World()
    job = w.job(approved())
    in_doubt(w, job)
    w.statuses.heard = NOW  # webhooks of the channel reach us; this message's never came
    assert await handlers.deliver(job, w.deps(in_doubt_window_s=60.0)) == Ack()
    assert w.provider.calls == 1  # sent again, once
    assert w.statuses.polls == 20  # the whole window (60 s - 20 s, every 2 s) was waited
    [sent] = w.of(SendSucceeded)
    assert isinstance(sent, SendSucceeded)
    assert (sent.provider_message_id, sent.attempts) == ("wamid.1", 2)
    assert w.of(SendFailed) == []


async def test_an_unnamed_in_doubt_send_is_dead_lettered_when_the_channel_was_silent() -> None:
    w = World()
    job = w.job(approved())
    in_doubt(w, job)
    w.statuses.heard = NOW - timedelta(seconds=15)  # only before the call had ended
    outcome = await handlers.deliver(job, w.deps(in_doubt_after_s=12.0))
    assert isinstance(outcome, DeadLetter)
    assert isinstance(outcome.error, InDoubtError)
    assert w.provider.calls == 0


async def test_the_channels_policy_and_window_decide_after_the_window() -> None:
    w = World()
    policy = InDoubtSettings(policy=InDoubtPolicy.DEAD_LETTER, window_s=30)
    job = w.job(approved(), in_doubt=policy)
    in_doubt(w, job)
    w.statuses.heard = NOW
    outcome = await handlers.deliver(job, w.deps())
    assert isinstance(outcome, DeadLetter)
    assert w.statuses.polls == 5  # 30 s window, 20 s already gone


async def test_providers_that_never_name_our_message_are_not_waited_for() -> None:
    w = World()
    job = w.job(approved(), provider="evolution")
    in_doubt(w, job)
    outcome = await handlers.deliver(job, w.deps())
    assert isinstance(outcome, DeadLetter)  # their default: an operator decides
    assert (w.statuses.watched, w.provider.calls) == ([], 0)

    resend = InDoubtSettings(policy=InDoubtPolicy.RESEND)
    job = w.job(approved(), provider="evolution", in_doubt=resend)
    in_doubt(w, job)
    assert await handlers.deliver(job, w.deps()) == Ack()
    assert (w.statuses.watched, w.provider.calls) == ([], 1)


async def test_a_late_answer_recorded_while_in_doubt_is_used() -> None:
    w = World()
    job = w.job(approved())
    in_doubt(w, job)
    real_get = w.store.get

    async def get(message_id: UUID) -> AttemptRecord | None:
        row = await real_get(message_id)
        if row is not None and row.state is State.SENDING and w.statuses.polls >= 2:
            return await w.store.record_accepted(message_id, "wamid.LATE")  # the old owner
        return row

    w.store.get = get  # type: ignore[method-assign]
    assert await handlers.deliver(job, w.deps()) == Ack()
    [sent] = w.of(SendSucceeded)
    assert isinstance(sent, SendSucceeded)
    assert sent.provider_message_id == "wamid.LATE"
    assert w.provider.calls == 0


async def test_a_replay_of_a_failed_message_sends_again_but_not_its_redelivery() -> None:
    w = World()
    w.provider.answers = [ProviderTimeoutError("timeout", provider="meta")]
    job = w.job(approved())
    await handlers.deliver(job, w.deps(policy=RetryPolicy(max_attempts=1)))
    dead_letter = uuid4()
    assert await handlers.deliver(w.job(job.approved, dead_letter), w.deps()) == Ack()
    assert w.provider.calls == 2
    await handlers.deliver(w.job(job.approved, dead_letter), w.deps())
    assert w.provider.calls == 2


async def test_an_unknown_channel_is_a_permanent_error() -> None:
    w = World()
    job = handlers.Job(approved(), seq=1)
    with pytest.raises(UnknownChannelError):
        await handlers.deliver(job, w.deps())


async def test_expired_and_disabled_sends_fail_without_a_call() -> None:
    w = World()
    expired = w.job(approved(not_after=NOW - timedelta(seconds=1)))
    await handlers.deliver(expired, w.deps())
    w.credentials.reply = w.credentials.reply.model_copy(update={"enabled": False})
    await handlers.deliver(w.job(approved()), w.deps())
    assert w.provider.calls == 0
    reasons = [(e.error_code, e.reason) for e in w.of(SendFailed) if isinstance(e, SendFailed)]
    assert reasons == [
        ("expired", FailureReason.UNKNOWN),
        ("channel_disabled", FailureReason.CHANNEL_DISCONNECTED),
    ]


async def test_a_call_that_times_out_after_a_hand_over_is_left_in_doubt_not_retried() -> None:
    """The replica was paused past its lease while the request was on the wire: its timeout
    says nothing about the provider, so it records no retry (the next owner would resend)."""
    w = World()
    guard = FakeGuard()

    class PausedProvider(FakeProvider):
        async def send(self, *args: Any, **kwargs: Any) -> SendResult:
            await kwargs["before_write"]()
            self.calls += 1
            guard.active = False  # the lease lapsed while the call was in flight
            raise ProviderTimeoutError("meta request timed out", provider="meta")

    w.provider = PausedProvider()
    job = w.job(approved())
    with pytest.raises(handlers.Stopping):
        await handlers.deliver(job, w.deps(guard=guard))
    assert w.store.writes == ["begin"]  # still "sending": the next owner resolves it
    assert w.provider.calls == 1
