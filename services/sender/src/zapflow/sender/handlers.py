"""The send use case: one approved message, from its attempt record to a final outcome.

``deliver`` runs until the message is accepted, failed or given up (dead letter), and returns
what the worker must do with the JetStream message (``Ack`` or ``DeadLetter``). It retries
provider errors *in place* — the recipient's lane waits, so the next message to that recipient
cannot overtake it — and records every attempt before and after the provider call
(``zapflow.sender.domain.attempts``). A message whose previous owner died during the call is
*in doubt*; it is resolved by the provider's own statuses where it names our message
(``zapflow.sender.domain.doubt``), the lane waiting meanwhile. Only ``Stopping`` and
infrastructure errors escape it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Final, TypeVar
from uuid import UUID

from zapflow.contracts.channels.v1 import ChannelSettings
from zapflow.contracts.common import SendPriority
from zapflow.contracts.envelope import utcnow
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.sending.v1 import FailureReason
from zapflow.providers.errors import AuthenticationError, ProviderError, ProviderTimeoutError
from zapflow.runtime.faults import is_infrastructure
from zapflow.sender import metrics, outcomes
from zapflow.sender.adapters.provider import IDEMPOTENT_PROVIDERS, error_kind, failure_reason
from zapflow.sender.domain import (
    AttemptRecord,
    ErrorKind,
    GiveUp,
    Plan,
    RetryPolicy,
    local_day,
    plan,
)
from zapflow.sender.domain.attempts import State
from zapflow.sender.domain.doubt import AfterWindow, InDoubtRule, after_window, in_doubt_rule
from zapflow.sender.errors import InDoubtError, UnknownChannelError
from zapflow.sender.outcomes import Ack, Outcome
from zapflow.sender.ports import (
    AttemptStore,
    ChannelDirectory,
    CredentialSource,
    Guard,
    NewAttempt,
    Pacer,
    PaceSlot,
    ParkedSend,
    ProviderPort,
    ProviderStatuses,
    Publish,
    StatusWatch,
    Stopping,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

PRIORITY: Final = {SendPriority.HIGH: 0, SendPriority.NORMAL: 1, SendPriority.BULK: 2}
RATE_LIMITS: Final = frozenset({ErrorKind.CHANNEL_RATE_LIMIT, ErrorKind.RECIPIENT_RATE_LIMIT})
IN_DOUBT: Final = InDoubtError.CODE
IN_FLIGHT_POLL_S: Final = 0.25
IN_DOUBT_POLL_S: Final = 2.0
"""While waiting for a status naming an in-doubt message, re-read its record this often."""


@dataclass(slots=True)
class Job:
    """One approved send being worked on; ``record`` is prefetched by the worker."""

    approved: SendApproved
    seq: int
    replay_of: UUID | None = None
    record: AttemptRecord | None = None
    prefetched: bool = False
    parked: ParkedSend | None = None
    """Fed back from ``parked_sends`` (acknowledged on JetStream when it was parked)."""

    @property
    def message_id(self) -> UUID:
        return self.approved.request.message_id

    @property
    def channel_key(self) -> tuple[str, str]:
        return self.approved.tenant_id, self.approved.request.channel_id


class _NoStatuses:
    """No provider statuses (tests that do not need them): nothing is ever named or heard."""

    @contextlib.asynccontextmanager
    async def watch(
        self, tenant_id: str, channel_id: str, message_id: UUID, *, since: datetime
    ) -> AsyncIterator[StatusWatch]:
        yield _Silence()


class _Silence:
    async def named(self, timeout_s: float) -> str | None:
        return None

    def heard_since(self, at: datetime) -> bool:
        return False


NO_STATUSES: Final = _NoStatuses()


@dataclass
class Deps:
    store: AttemptStore
    channels: ChannelDirectory
    credentials: CredentialSource
    provider: ProviderPort
    publish: Publish
    pacer_for: Callable[[str, str, ChannelSettings], Awaitable[Pacer]]
    guard: Guard
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    in_doubt_after_s: float = 12.0
    statuses: ProviderStatuses = NO_STATUSES
    in_doubt_window_s: float = 300.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], datetime] = utcnow


async def deliver(job: Job, deps: Deps) -> Outcome:
    """Take ``job`` to its outcome; see the module docstring."""
    record = job.record if job.prefetched else await deps.store.get(job.message_id)
    while True:
        idempotent = record is not None and record.provider in IDEMPOTENT_PROVIDERS
        step = plan(
            record,
            replay_of=job.replay_of,
            in_doubt_after_s=deps.in_doubt_after_s,
            idempotent_provider=idempotent,
        )
        if step is Plan.SEND:
            outcome = await _attempts(job, record, await _settings(job, deps), deps)
        elif record is None:  # every other plan is about an existing record
            raise AssertionError(f"plan {step} without a record")
        else:
            outcome = await _settle_recorded(job, record, step, deps)
        if outcome is not None:
            return outcome
        record = await deps.store.get(job.message_id)


async def _settle_recorded(
    job: Job, record: AttemptRecord, step: Plan, deps: Deps
) -> Outcome | None:
    """The plans for a message that has a record; None: read it again and re-plan."""
    if step is Plan.REPUBLISH_SENT:
        await outcomes.publish_sent(deps.publish, job.approved, record, deps.clock())
        return Ack()
    if step is Plan.REPUBLISH_FAILED:
        return await outcomes.publish_failed(deps.publish, job.approved, record, deps.clock())
    if step is Plan.IN_DOUBT:
        return await _resolve_in_doubt(job, record, deps)
    if step is Plan.WAIT_IN_FLIGHT:
        ended = await _wait_in_flight(record, deps)
        return None if ended else await _resolve_in_doubt(job, record, deps)
    if step is Plan.RESET_FOR_REPLAY and job.replay_of is not None:
        await deps.store.reset_for_replay(job.message_id, job.replay_of)
    return None


async def _settings(job: Job, deps: Deps) -> ChannelSettings:
    request = job.approved.request
    settings = await deps.channels.settings(job.approved.tenant_id, request.channel_id)
    if settings is None:
        raise UnknownChannelError(job.approved.tenant_id, request.channel_id)
    return settings


async def _attempts(
    job: Job, record: AttemptRecord | None, settings: ChannelSettings, deps: Deps
) -> Outcome | None:
    """Provider calls until an outcome; None when the record changed under us (re-plan)."""
    request = job.approved.request
    pacer = await deps.pacer_for(job.approved.tenant_id, request.channel_id, settings)
    while True:
        credentials = await deps.credentials.get(job.approved.tenant_id, request.channel_id)
        refusal = _refusal(job, settings, credentials, deps)
        if refusal is not None:
            return await _fail(job, settings, deps, *refusal)
        slot = await pacer.acquire(
            priority=PRIORITY[request.priority], counts_toward_cap=record is None
        )
        try:
            with deps.guard.critical():
                record = await _record_attempt(job, record, settings, deps)
                if record is None:
                    return None
                record, error = await _call(job, settings, credentials, slot, deps)
        finally:
            slot.release()  # unused if no request was written
        if error is None:
            metrics.SENDS.labels("accepted").inc()
            await outcomes.publish_sent(deps.publish, job.approved, record, deps.clock())
            return Ack()
        outcome = await _after_failure(job, record, settings, deps, pacer, error)
        if outcome is not None:
            return outcome


async def _call(
    job: Job,
    settings: ChannelSettings,
    credentials: ChannelCredentialsReply,
    slot: PaceSlot,
    deps: Deps,
) -> tuple[AttemptRecord, ProviderError | None]:
    """One provider call (the pace slot is committed right before the request is written) and
    its recorded outcome."""
    try:
        with metrics.PROVIDER_SECONDS.time():
            result = await deps.provider.send(
                settings, credentials, job.approved.request, before_write=_gate(slot, deps.guard)
            )
    except Stopping:  # handed over while the pace held the request back: nothing was written
        not_sent = partial(
            deps.store.record_retry, job.message_id, rate_limited=False, code="handed_over",
            text="not sent: the partition was handed over before the request was written",
        )  # fmt: skip
        await _durably(deps, not_sent)
        raise
    except ProviderError as exc:
        error: ProviderError = exc
    except Exception as exc:  # a bug or an unforeseen transport failure: retried
        logger.exception("provider call failed unexpectedly")
        error = UnexpectedCallError(type(exc).__name__)
    else:
        accepted = partial(deps.store.record_accepted, job.message_id, result.provider_message_id)
        return await _durably(deps, accepted), None
    if isinstance(error, UNKNOWN_OUTCOMES) and not deps.guard.active:
        # handed over during the call (a pause past the lease): a timeout here says nothing
        # about the provider, and writing "retrying" would make the next owner send it again.
        # The record stays "sending": the next owner resolves it as in doubt.
        logger.warning("call outcome unknown after a hand-over: left in doubt")
        raise Stopping
    retry = partial(
        deps.store.record_retry,
        job.message_id,
        rate_limited=error_kind(error) in RATE_LIMITS,
        code=error.code,
        text=error.message,
    )
    return await _durably(deps, retry), error


def _gate(slot: PaceSlot, guard: Guard) -> Callable[[], Awaitable[None]]:
    """Right before the request is written: the pace, then the guard once more — a replica that
    was paused while the pace held the request back must not write it when it wakes."""

    async def gate() -> None:
        await slot.commit()
        with guard.critical():  # nested in the attempt's own section: only the check
            pass

    return gate


async def _durably(deps: Deps, write: Callable[[], Awaitable[T]], *, tries: int = 20) -> T:
    """A write that records what the provider answered, retried through database hiccups:
    losing it would turn a known outcome into an in-doubt one. An outage is waited out however
    long it lasts; ``tries`` bounds only the other errors."""
    failures = attempt = 0
    while True:
        try:
            return await write()
        except Exception as exc:
            attempt += 1
            failures += 0 if is_infrastructure(exc) else 1
            if failures >= tries:
                raise
            if attempt == 1 or attempt % 10 == 0:
                logger.warning("recording the provider's answer failed, retrying", exc_info=True)
            await deps.sleep(deps.policy.backoff(min(attempt, 5), deps.rng))


class UnexpectedCallError(ProviderError):
    """Something other than a provider error escaped the call; retried like a timeout."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unexpected error in provider call: {name}", code="internal")


UNKNOWN_OUTCOMES: Final = (ProviderTimeoutError, UnexpectedCallError)
"""Call failures that do not say whether the provider took the message."""


def _refusal(
    job: Job, settings: ChannelSettings, credentials: ChannelCredentialsReply, deps: Deps
) -> tuple[FailureReason, str, str] | None:
    """Why the message must not be sent at all (checked before every attempt)."""
    not_after = job.approved.request.not_after
    if not_after is not None and deps.clock() > not_after:
        return FailureReason.UNKNOWN, "expired", "not sent before its not_after time"
    if not credentials.found:
        return FailureReason.UNKNOWN, "channel_not_found", "the gateway does not know the channel"
    if not settings.enabled or not credentials.enabled:
        return FailureReason.CHANNEL_DISCONNECTED, "channel_disabled", "the channel is disabled"
    return None


def _identity(job: Job, settings: ChannelSettings, deps: Deps) -> NewAttempt:
    day, _ = local_day(deps.clock().timestamp(), settings.policy.timezone)
    return NewAttempt(
        message_id=job.message_id,
        tenant_id=job.approved.tenant_id,
        channel_id=job.approved.request.channel_id,
        provider=settings.provider,
        local_day=day,
        replay_of=job.replay_of,
    )


async def _record_attempt(
    job: Job, record: AttemptRecord | None, settings: ChannelSettings, deps: Deps
) -> AttemptRecord | None:
    if record is None:
        return await deps.store.begin(_identity(job, settings, deps))
    return await deps.store.next_attempt(job.message_id, expected=record.state)


async def _after_failure(
    job: Job,
    record: AttemptRecord,
    settings: ChannelSettings,
    deps: Deps,
    pacer: Pacer,
    error: ProviderError,
) -> Outcome | None:
    kind = error_kind(error)
    if kind is ErrorKind.CHANNEL_RATE_LIMIT:
        pacer.rate_limited(error.retry_after)
    if isinstance(error, AuthenticationError):  # the token may have been rotated meanwhile
        deps.credentials.invalidate(job.approved.tenant_id, job.approved.request.channel_id)
    if kind is ErrorKind.PERMANENT:
        metrics.SENDS.labels("failed").inc()
        return await _fail(job, settings, deps, failure_reason(error), error.code, error.message)
    step = deps.policy.after_failure(kind, record, retry_after=error.retry_after, rng=deps.rng)
    if isinstance(step, GiveUp):
        metrics.SENDS.labels("exhausted").inc()
        failed = await deps.store.record_failed(
            _identity(job, settings, deps),
            reason=failure_reason(error).value,
            permanent=False,
            code=error.code,
            text=error.message,
        )
        return await outcomes.publish_failed(deps.publish, job.approved, failed, deps.clock())
    metrics.RETRIES.labels(kind.value).inc()
    await deps.sleep(step.delay_s)
    return None


async def _fail(
    job: Job,
    settings: ChannelSettings,
    deps: Deps,
    reason: FailureReason,
    code: str | None,
    text: str,
) -> Outcome:
    """A permanent failure, before or after a provider call: SendFailed, no dead letter."""
    record = await deps.store.record_failed(
        _identity(job, settings, deps), reason=reason.value, permanent=True, code=code, text=text
    )
    return await outcomes.publish_failed(deps.publish, job.approved, record, deps.clock())


async def _wait_in_flight(record: AttemptRecord, deps: Deps) -> bool:
    """Poll until the in-flight attempt of a previous owner ended (True), or must have ended
    by now without a recorded outcome (False: it is in doubt)."""
    remaining = deps.in_doubt_after_s - record.since_last_attempt_s
    while remaining > 0:
        await deps.sleep(min(IN_FLIGHT_POLL_S, remaining))
        remaining -= IN_FLIGHT_POLL_S
        current = await deps.store.get(record.message_id)
        if current is None or (current.state, current.attempts) != (State.SENDING, record.attempts):
            return True
    return False


async def _resolve_in_doubt(job: Job, record: AttemptRecord, deps: Deps) -> Outcome | None:
    """Wait for the provider to name the message (then it was sent), else the channel's policy:
    resend (None: re-plan from the record, now ``retrying``) or fail and dead-letter."""
    settings = await _settings(job, deps)
    rule = in_doubt_rule(settings.in_doubt, settings.provider, deps.in_doubt_window_s)
    call_at = deps.clock() - timedelta(seconds=record.since_last_attempt_s)
    logger.warning("send in doubt after a lost owner", extra={"message_id": str(job.message_id)})
    with _waiting_in_doubt():
        async with _watch(job, rule, call_at, deps) as watch:
            found, changed = await _await_named(job, record, rule, watch, deps)
            heard = watch is not None and watch.heard_since(
                call_at + timedelta(seconds=deps.in_doubt_after_s)
            )
    if changed:
        return None  # the record moved meanwhile (a late answer was recorded): re-plan
    ids = {"message_id": str(job.message_id)}
    if found is not None:
        logger.info("in-doubt send named by a provider status: sent", extra=ids)
        metrics.SENDS.labels("in_doubt_sent").inc()
        accepted = partial(deps.store.record_accepted, job.message_id, found)
        sent = await _durably(deps, accepted)
        await outcomes.publish_sent(deps.publish, job.approved, sent, deps.clock())
        return Ack()
    if after_window(rule, channel_heard_after_call=heard) is AfterWindow.RESEND:
        logger.warning("in-doubt send not named by the provider in its window: resent", extra=ids)
        metrics.SENDS.labels("in_doubt_resent").inc()
        text = "in doubt; no provider status named it within the window: sent again"
        await deps.store.record_retry(job.message_id, rate_limited=False, code=IN_DOUBT, text=text)
        return None
    return await _fail_in_doubt(job, record, deps)


@contextlib.asynccontextmanager
async def _watch(
    job: Job, rule: InDoubtRule, call_at: datetime, deps: Deps
) -> AsyncIterator[StatusWatch | None]:
    """The provider's statuses naming the message, if the provider ever names it."""
    if not rule.echoes:
        yield None
        return
    tenant, channel = job.approved.tenant_id, job.approved.request.channel_id
    async with deps.statuses.watch(tenant, channel, job.message_id, since=call_at) as watch:
        yield watch


async def _await_named(
    job: Job, record: AttemptRecord, rule: InDoubtRule, watch: StatusWatch | None, deps: Deps
) -> tuple[str | None, bool]:
    """(provider id named by a status, record changed meanwhile), once either happened or the
    window (from the call) passed. The record is re-read every ``IN_DOUBT_POLL_S``."""
    remaining = rule.window_s - record.since_last_attempt_s
    while watch is not None and remaining > 0:
        found = await watch.named(min(IN_DOUBT_POLL_S, remaining))
        if found is not None:
            return found, False
        current = await deps.store.get(job.message_id)
        if current is None or (current.state, current.attempts) != (State.SENDING, record.attempts):
            return None, True
        remaining = min(remaining - IN_DOUBT_POLL_S, rule.window_s - current.since_last_attempt_s)
    return None, False


@contextlib.contextmanager
def _waiting_in_doubt() -> Iterator[None]:
    metrics.IN_DOUBT_WAITING.inc()
    try:
        yield
    finally:
        metrics.IN_DOUBT_WAITING.dec()


async def _fail_in_doubt(job: Job, record: AttemptRecord, deps: Deps) -> Outcome:
    logger.warning("send in doubt dead-lettered", extra={"message_id": str(job.message_id)})
    metrics.SENDS.labels("in_doubt").inc()
    error = InDoubtError(record.attempts)
    identity = NewAttempt(
        message_id=job.message_id,
        tenant_id=job.approved.tenant_id,
        channel_id=job.approved.request.channel_id,
        provider=record.provider,
        local_day=deps.clock().date(),  # unused: the row exists
    )
    failed = await deps.store.record_failed(
        identity,
        reason=FailureReason.UNKNOWN.value,
        permanent=False,
        code=error.code,
        text=error.message,
    )
    return await outcomes.publish_failed(deps.publish, job.approved, failed, deps.clock())
