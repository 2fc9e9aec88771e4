"""One owned partition: fetch approved sends, work them in per-recipient lanes, ack last.

The sequential ``zapflow.runtime.consumer.Consumer`` cannot keep a channel at 80 msg/s against a
provider answering in 200 ms, so the sender has its own worker on nats-py ``fetch``, keeping the
runtime's semantics: a message is acknowledged only after its attempt record, its outcome event
and (when given up) its dead-letter record are written; an invalid payload is dead-lettered and
terminated; nothing is nak'ed, so no later message can overtake an earlier one.

* **Lanes.** Fetched messages go to the lane of their (tenant, channel, recipient); each lane
  has one task working its head (``handlers.deliver``), so recipients proceed concurrently under
  their channel's pace while each conversation keeps its order. Retries happen in place.
* **Held messages stay alive.** Everything fetched and not yet settled gets ``in_progress()``
  every ``keepalive_s`` (a third of the consumer's ``ack_wait``), however long it waits for pace,
  backoff or a daily cap. The consumer's ``max_ack_pending`` bounds how many are held.
* **A channel holds at most its budget** (``zapflow.sender.parking``): beyond it, its messages
  are parked in PostgreSQL in stream order and acknowledged, and fed back into the lanes as it
  frees up, so a channel that cannot send never fills the partition's ``max_ack_pending``.
* **A fresh consumer per ownership.** Taking a partition deletes and recreates its durable
  consumer, so whatever a dead owner had fetched is delivered again *at once and in stream
  order* (instead of one ``ack_wait`` later, after newer messages).
* **Stopping** (lease released): the fetch loop is cancelled and its subscription closed
  *before* the lease goes (a pull request sent later would land on the next owner's fresh
  consumer and hide messages from it); no new provider call starts (``Guard``); lanes waiting
  for pace or backoff are cancelled at once; calls in flight finish and record their outcome.
  Unsettled messages are left unacknowledged for the next owner.
* **Fencing.** ``holds`` (``zapflow.runtime.partitions.Ownership.held``) is checked before the
  consumer is reset, before every fetch, on what a fetch returns and before every provider call
  (``PartitionGuard.critical``): a replica that was paused or blocked past its lease stops on
  waking without fetching or calling the provider once more, before its lease loop noticed.
* **Outages are waited out.** An infrastructure error (``zapflow.runtime.faults``: PostgreSQL
  or NATS unreachable) keeps the message in its lane and retries in place, capped at
  ``INFRA_WAIT_CAP_S``, without counting towards ``MAX_UNEXPECTED_FAILURES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterator
from typing import Final
from uuid import UUID

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from pydantic import ValidationError

from zapflow.contracts import headers as h
from zapflow.contracts.errors import PermanentError, ProcessingError, TransientError
from zapflow.contracts.sender.v1 import SendApproved
from zapflow.contracts.streams import ConsumerSpec
from zapflow.runtime.broker import consumer_config
from zapflow.runtime.faults import is_infrastructure
from zapflow.sender import handlers, metrics
from zapflow.sender.domain import Lanes
from zapflow.sender.outcomes import DeadLetter, Outcome
from zapflow.sender.pacing import Pacers
from zapflow.sender.parking import Budget, Parking
from zapflow.sender.ports import ParkedSend, ParkStore, Stopping
from zapflow.sender.sink import Sink

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_S: Final = 1.0
MAX_UNEXPECTED_FAILURES: Final = 10
"""Consecutive unexpected errors on one message before it is dead-lettered (as ``max_deliver``)."""
INFRA_WAIT_CAP_S: Final = 5.0

LaneKey = tuple[str, str, str]


def _always() -> bool:
    return True


class PartitionGuard:
    """The ``Guard`` port: marks provider calls in flight; refuses new ones once stopping or
    once the partition's lease no longer holds (``holds``, the fencing check)."""

    def __init__(self, holds: Callable[[], bool] | None = None) -> None:
        self.stopping = False
        self._holds = holds or _always
        self._critical: set[asyncio.Task[object]] = set()

    @property
    def active(self) -> bool:
        """Not stopping, and the partition is still ours."""
        return not self.stopping and self._holds()

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        if not self.active:
            raise Stopping
        task = asyncio.current_task()
        assert task is not None
        nested = task in self._critical  # the check right before the write (handlers._gate)
        self._critical.add(task)
        try:
            yield
        finally:
            if not nested:
                self._critical.discard(task)

    def is_critical(self, task: asyncio.Task[None]) -> bool:
        return task in self._critical


class PartitionWorker:
    """Works one partition's consumer until :meth:`stop`; see the module docstring."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        deps_for: Callable[[PartitionGuard, Pacers], handlers.Deps],
        pacers: Pacers,
        sink: Sink,
        *,
        park: ParkStore | None = None,
        budget: Budget | None = None,
        keepalive_s: float | None = None,
        rng: random.Random | None = None,
        holds: Callable[[], bool] | None = None,
    ) -> None:
        self.spec = spec
        self.guard = PartitionGuard(holds)
        self._js = js
        self._pacers = pacers
        self._deps = deps_for(self.guard, pacers)
        self._sink = sink
        self._keepalive_s = keepalive_s or spec.ack_wait_s / 3
        self._rng = rng or random.Random()
        self._lanes: Lanes[LaneKey, handlers.Job] = Lanes()
        self._held: dict[int, Msg] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._fetcher: asyncio.Task[None] | None = None
        self.parking = (
            Parking(park, spec.partition or 0, budget or Budget(), pacers.rate)
            if park is not None
            else None
        )
        self._park = park
        self._fed: set[int] = set()  # stream sequences of parked messages now in lanes

    @property
    def held(self) -> int:
        return len(self._held)

    async def run(self) -> None:
        """Reset the consumer, fetch and dispatch until stopped; returns when idle."""
        if self.guard.stopping:
            return
        self._fetcher = asyncio.create_task(self._fetch_phase(), name=self.spec.durable)
        keepalive = asyncio.create_task(self._keepalive(), name=f"{self.spec.durable}-keepalive")
        feeder = self._start_feeder()
        try:
            await asyncio.wait({self._fetcher})
            if self._fetcher.cancelled() or self.guard.stopping:
                return
            self._fetcher.result()  # a crash: the runner starts a fresh worker
        finally:
            self.stop()
            if self._tasks:
                await asyncio.wait(self._tasks)
            keepalive.cancel()
            if feeder is not None:
                feeder.cancel()
            if self.parking is not None:
                self.parking.close()
            await self._pacers.close()
            metrics.HELD.dec(len(self._held))
            self._held.clear()

    def stop(self) -> None:
        """No new fetch and no new provider call; cancel lanes that only wait. Returns at once;
        :meth:`fetching_stopped` waits until no fetch request can be sent any more."""
        self.guard.stopping = True
        self._room.set()
        if self._fetcher is not None:
            self._fetcher.cancel()
        for task in self._tasks:
            if not self.guard.is_critical(task):
                task.cancel()

    async def fetching_stopped(self) -> None:
        """After :meth:`stop`: return once the fetch loop ended (its subscription is gone), so the
        next owner's fresh consumer can never be pulled from by this worker."""
        if self._fetcher is not None:
            await asyncio.wait({self._fetcher})

    # -- fetching -----------------------------------------------------------------------------
    async def _fetch_phase(self) -> None:
        if not self.guard.active:
            return  # never reset a consumer that may be the next owner's already
        if self.parking is not None:
            await self.parking.load()  # before the first fetch: see zapflow.sender.parking
        await self._reset_consumer()
        sub = await self._js.pull_subscribe_bind(self.spec.durable, stream=self.spec.stream)
        try:
            while self.guard.active:
                await self._fetch_some(sub)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _reset_consumer(self) -> None:
        with contextlib.suppress(NotFoundError):
            await self._js.delete_consumer(self.spec.stream, self.spec.durable)
        await self._js.add_consumer(self.spec.stream, consumer_config(self.spec))

    async def _fetch_some(self, sub: JetStreamContext.PullSubscription) -> None:
        room = self.spec.max_ack_pending - len(self._held)
        if room <= 0:
            self._room.clear()
            await self._room.wait()
            return
        try:
            msgs = await sub.fetch(room, timeout=FETCH_TIMEOUT_S)
        except (NatsTimeoutError, TimeoutError):
            if self.parking is not None:
                self.parking.caught_up()
            return
        except APIError as exc:  # e.g. 409 while acks are still on their way
            logger.debug("fetch refused: %s", exc)
            await self._check_consumer()
            await asyncio.sleep(0.05)
            return
        if not self.guard.active:
            return  # left unacknowledged: the next owner gets them again
        jobs = [job for job in map(self._admit, msgs) if job is not None]
        await self._dispatch(msgs, jobs)

    async def _check_consumer(self) -> None:
        """A consumer deleted under the worker refuses every fetch: end the fetch loop (a
        crash), so the partition's supervisor starts a fresh worker, which recreates it."""
        try:
            await self._js.consumer_info(self.spec.stream, self.spec.durable)
        except NotFoundError:
            raise ConsumerGoneError(self.spec.durable) from None
        except Exception as exc:
            if not is_infrastructure(exc):
                raise

    def _admit(self, msg: Msg) -> handlers.Job | None:
        seq = msg.metadata.sequence.stream
        if seq in self._held:
            return None  # already held (a redelivery of something we still work on)
        if seq in self._fed:  # parked before, being worked from the park: this copy is done
            self._spawn(_ack(msg))
            return None
        self._held[seq] = msg
        metrics.HELD.inc()
        try:
            approved = SendApproved.model_validate_json(msg.data)
            replay = (msg.headers or {}).get(h.ZF_REPLAY_OF)
            return handlers.Job(approved, seq, replay_of=UUID(replay) if replay else None)
        except (ValidationError, ValueError) as exc:
            logger.error("invalid approved send dead-lettered", extra={"seq": seq})
            self._spawn(self._settle(seq, DeadLetter(_invalid(exc), 1)))
            return None

    async def _dispatch(self, msgs: list[Msg], jobs: list[handlers.Job]) -> None:
        """Each fetched job to its lane, or to the park when its channel is over budget."""
        parked: list[handlers.Job]
        kept, parked = jobs, []
        if self.parking is not None:
            for key in {job.channel_key for job in jobs}:
                if not self.parking.knows(key):  # the budget from the pace, from the start
                    settings = await self._deps.channels.settings(*key)
                    self.parking.configured(key, settings.pace.rate_per_second if settings else 0)
            kept = []
            for job in jobs:
                (parked if self.parking.route(job.channel_key, job.seq) else kept).append(job)
        if parked:
            await self._park_jobs(parked)
        await self._prefetch(kept)
        for job in kept:
            self._enqueue(job)
        if self.parking is not None and msgs:  # after the enqueue: older ones are in lanes
            self.parking.fetched(max(m.metadata.sequence.stream for m in msgs))

    async def _prefetch(self, jobs: list[handlers.Job]) -> None:
        """One query for the attempt records of a whole batch (most have none)."""
        try:
            records = await self._deps.store.lookup([job.message_id for job in jobs])
        except Exception:  # each lane reads its own record then
            logger.warning("attempt prefetch failed", exc_info=True)
            return
        for job in jobs:
            job.record = records.get(job.message_id)
            job.prefetched = True

    def _enqueue(self, job: handlers.Job) -> None:
        request = job.approved.request
        key = (job.approved.tenant_id, request.channel_id, request.to.address)
        if self._lanes.push(key, job.seq, job):
            self._spawn(self._work_lane(key))

    # -- lanes --------------------------------------------------------------------------------
    async def _work_lane(self, key: LaneKey) -> None:
        job = self._lanes.head(key)
        while job is not None:
            outcome = await self._deliver(job)
            if outcome is None:
                return  # stopping: leave the lane's messages to the next owner
            await self._finish(job, outcome)
            job = self._lanes.pop(key)

    async def _finish(self, job: handlers.Job, outcome: Outcome) -> None:
        if job.parked is None:
            await self._settle(job.seq, outcome)
        else:
            await self._settle_parked(job.parked, outcome)
            self._fed.discard(job.seq)
        if self.parking is not None:
            self.parking.left(job.channel_key)

    async def _deliver(self, job: handlers.Job) -> Outcome | None:
        failures = waits = 0
        while True:
            try:
                return await handlers.deliver(job, self._deps)
            except Stopping:
                return None
            except PermanentError as exc:
                logger.error("send given up", extra={"error": type(exc).__name__})
                return DeadLetter(exc, max(1, job.record.attempts if job.record else 1))
            except Exception as exc:
                if is_infrastructure(exc):  # waited out: not a failure of this message
                    waits += 1
                    if waits == 1 or waits % 20 == 0:
                        logger.warning("send waits for the infrastructure", extra={"waits": waits})
                    delay = min(INFRA_WAIT_CAP_S, self._deps.policy.backoff(waits, self._rng))
                elif isinstance(exc, TransientError):
                    failures += 1
                    logger.warning("send waits: %s", exc.code, extra={"attempt": failures})
                    delay = self._deps.policy.backoff(failures, self._rng)
                else:
                    failures += 1
                    logger.exception("send failed unexpectedly", extra={"attempt": failures})
                    if failures >= MAX_UNEXPECTED_FAILURES:
                        return DeadLetter(_unexpected(exc), failures)
                    delay = self._deps.policy.backoff(failures, self._rng)
            job.prefetched = False
            await asyncio.sleep(delay)

    async def _settle(self, seq: int, outcome: Outcome) -> None:
        """Ack, or dead-letter then terminate; retried until it worked (or we stop)."""
        msg = self._held[seq]
        failures = 0
        while True:
            try:
                if isinstance(outcome, DeadLetter):
                    await self._sink.dead_letter(msg, outcome.error, outcome.attempts)
                    await msg.term()
                else:
                    await msg.ack()
                break
            except Exception:
                failures += 1
                logger.warning("settling failed, retrying", exc_info=True)
                if self.guard.stopping and failures > 3:
                    return
                await asyncio.sleep(self._deps.policy.backoff(failures, self._rng))
        del self._held[seq]
        metrics.HELD.dec()
        self._room.set()

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self._keepalive_s)
            for msg in list(self._held.values()):
                with contextlib.suppress(Exception):  # the next round tries again
                    await msg.in_progress()

    # -- the park -----------------------------------------------------------------------------
    def _start_feeder(self) -> asyncio.Task[None] | None:
        if self.parking is None:
            return None
        feed = self.parking.feed(self._take_parked)
        return asyncio.create_task(feed, name=f"{self.spec.durable}-feeder")

    async def _park_jobs(self, jobs: list[handlers.Job]) -> None:
        """Store the jobs' messages in the park, then acknowledge them (ack last)."""
        assert self.parking is not None
        sends = [self._parked_copy(job) for job in jobs]
        failures = 0
        while True:
            if not self.guard.active:
                return  # left unacknowledged: the next owner gets them again
            try:
                await self.parking.park(sends)
                break
            except Exception:
                failures += 1
                logger.warning("parking failed, retrying", exc_info=True)
                await asyncio.sleep(self._deps.policy.backoff(failures, self._rng))
        for job in jobs:
            msg = self._held.pop(job.seq)
            metrics.HELD.dec()
            self._spawn(_ack(msg))
        self._room.set()

    def _parked_copy(self, job: handlers.Job) -> ParkedSend:
        msg = self._held[job.seq]
        tenant_id, channel_id = job.channel_key
        return ParkedSend(
            message_id=job.message_id,
            tenant_id=tenant_id,
            channel_id=channel_id,
            partition=self.spec.partition or 0,
            seq=job.seq,
            subject=msg.subject,
            headers=dict(msg.headers or {}),
            payload=msg.data,
        )

    async def _take_parked(self, sends: list[ParkedSend]) -> None:
        """Parked messages fed back (in stream order) into their lanes."""
        jobs = []
        for send in sends:
            self._fed.add(send.seq)
            try:
                approved = SendApproved.model_validate_json(send.payload)
            except ValidationError as exc:  # was valid when parked: a contract went wrong
                self._spawn(self._drop_parked(send, DeadLetter(_invalid(exc), 1)))
                continue
            jobs.append(_parked_job(send, approved))
        await self._prefetch(jobs)
        for job in jobs:
            self._enqueue(job)

    async def _drop_parked(self, send: ParkedSend, outcome: DeadLetter) -> None:
        await self._settle_parked(send, outcome)
        self._fed.discard(send.seq)
        if self.parking is not None:
            self.parking.left((send.tenant_id, send.channel_id))

    async def _settle_parked(self, send: ParkedSend, outcome: Outcome) -> None:
        """Dead-letter record (from the stored copy) if given up, then the row goes."""
        assert self._park is not None
        failures = 0
        while True:
            try:
                if isinstance(outcome, DeadLetter):
                    error, attempts = outcome.error, outcome.attempts
                    await self._sink.dead_letter_parked(send, self.spec.durable, error, attempts)
                await self._park.remove(send.message_id)
                return
            except Exception:
                failures += 1
                logger.warning("settling a parked send failed, retrying", exc_info=True)
                if self.guard.stopping and failures > 3:
                    return  # the row stays: the next owner works it (its record says how far)
                await asyncio.sleep(self._deps.policy.backoff(failures, self._rng))

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("lane crashed", exc_info=task.exception())


class ConsumerGoneError(Exception):
    """The partition's durable consumer no longer exists on the server."""


class InvalidPayloadError(PermanentError):
    """An approved send that is not a valid ``SendApproved``."""


class UnexpectedFailureError(PermanentError):
    """Sending kept failing with an unexpected error."""


async def _ack(msg: Msg) -> None:
    """Acknowledge a message whose effect is stored; a lost ack only brings it back once more,
    and then the stored effect (a parked row, an attempt record) makes it a no-op."""
    try:
        await msg.ack()
    except Exception:
        logger.debug("ack failed", exc_info=True)


def _parked_job(send: ParkedSend, approved: SendApproved) -> handlers.Job:
    replay = send.headers.get(h.ZF_REPLAY_OF)
    return handlers.Job(approved, send.seq, replay_of=UUID(replay) if replay else None, parked=send)


def _invalid(exc: Exception) -> ProcessingError:
    return InvalidPayloadError(f"invalid SendApproved: {type(exc).__name__}", code="invalid")


def _unexpected(exc: Exception) -> ProcessingError:
    return UnexpectedFailureError(f"unexpected error: {type(exc).__name__}", code="internal")
