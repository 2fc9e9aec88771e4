"""The simulated provider: admission (auth, storms, errors, limits), acceptance and its effects.

Every decision about a send is taken when the request arrives, so acceptance order is arrival
order; the configured latency only delays the answer. An accepted send is appended to the audit
log, counted, and its webhooks are planned; the HTTP layer (:mod:`.app`) only translates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from zapflow.simulator import evolution, meta, meta_webhooks
from zapflow.simulator.auditlog import AuditLog, AuditRecord, content_hash
from zapflow.simulator.config import NumberConfig, SimulatorSettings
from zapflow.simulator.limits import KeyedBuckets, StormSchedule, TokenBucket
from zapflow.simulator.stats import Outcome, Stats
from zapflow.simulator.webhooks import Chain, Step, WebhookDispatcher
from zapflow.simulator.wire import Accepted, JsonDict, SendCall, WebhookFormat, WireError

_T = TypeVar("_T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Deps:
    """What tests replace: the webhook HTTP client, the clocks and the random source."""

    client: httpx.AsyncClient | None = None
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = _utcnow
    rng: random.Random | None = None


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, JSON body, and how long to wait before giving it."""

    status: int
    body: JsonDict
    delay_s: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, outcome: Outcome, error: WireError) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.error = error


class Simulator:
    def __init__(self, settings: SimulatorSettings, deps: Deps | None = None) -> None:
        deps = deps or Deps()
        self.settings = settings
        self.rng = deps.rng or random.Random(settings.seed)
        self.clock = deps.clock
        self.wall = deps.wall
        self.stats = Stats()
        self.audit_log = AuditLog(settings.audit)
        self._own_client = deps.client is None
        self._client = deps.client or httpx.AsyncClient()
        self.dispatcher = WebhookDispatcher(
            settings.webhooks, self._client, stats=self.stats, clock=self.clock, rng=self.rng
        )
        self.storm = StormSchedule(settings.storm, started_at=self.clock())
        self._meta = {n.key: n for n in settings.numbers if n.provider == "meta"}
        self._evolution = {n.key: n for n in settings.numbers if n.provider == "evolution"}
        self._buckets: dict[str, TokenBucket] = {}
        self._pairs: dict[str, KeyedBuckets] = {}
        for number in settings.numbers:
            if (limit := settings.throughput(number)) is not None:
                self._buckets[number.channel_id] = TokenBucket(limit.rate, limit.burst)
            if settings.pair_rate_limit is not None:
                self._pairs[number.channel_id] = KeyedBuckets(settings.pair_rate_limit)
        self._formats: dict[str, WebhookFormat] = {
            "meta": meta_webhooks.MetaWebhooks(),
            "evolution": evolution.EvolutionWebhooks(),
        }

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Background work (audit flushes, webhooks) while the server runs; on exit the audit
        log is flushed and closed, and webhooks still pending are dropped."""
        self.audit_log.open()
        flusher = asyncio.create_task(self.audit_log.run())
        webhooks = asyncio.create_task(self.dispatcher.run())
        try:
            yield
        finally:
            webhooks.cancel()
            self.audit_log.stop()
            await asyncio.gather(webhooks, flusher, return_exceptions=True)
            await self.audit_log.close()
            if self._own_client:
                await self._client.aclose()

    # -- Meta ----------------------------------------------------------------------------------

    def meta_request(
        self, version: str, phone_number_id: str, authorization: str | None, raw: bytes
    ) -> Reply:
        number = self._meta.get(phone_number_id)
        try:
            if not meta.VERSION_PATTERN.fullmatch(version):
                raise _Refused("invalid", meta.unknown_path(version, self.rng))
            if number is None:
                raise _Refused("invalid", meta.unknown_number(phone_number_id, self.rng))
            if not _bearer_ok(number, authorization):
                raise _Refused("unauthorized", meta.unauthorized(self.rng))
            data = _json(raw, lambda: meta.invalid("Request body must be JSON.", self.rng))
            if isinstance(data, dict) and meta.is_mark_read(data):
                _guard(lambda: meta.parse_mark_read(data, self.rng))
                self._count(number, "mark_read")
                return self._reply(200, dict(meta.MARK_READ_ANSWER))
            call = _guard(lambda: meta.parse_send(data, self.rng))
            self._admit_meta(number, call)
        except _Refused as refused:
            if number is not None:
                self._count(number, refused.outcome)
            return self._reply(refused.error.status, refused.error.body)
        accepted = self._accept(number, call, meta.new_message_id(call.wa_id, self.rng))
        if self._draw(self.settings.errors.lost_response_rate):
            self._count(number, "lost_response")
            error = meta.server_error(self.rng)
            return self._reply(error.status, error.body)
        self._count(number, "accepted")
        return self._reply(200, meta.send_answer(call, accepted.message_id))

    def _admit_meta(self, number: NumberConfig, call: SendCall) -> None:
        now, status = self.clock(), self.settings.errors.rate_limit_http_status
        if self.storm.active(now):
            raise _Refused("storm_rate_limited", meta.rate_limited(status, self.rng))
        if self._draw(self.settings.errors.server_error_rate):
            raise _Refused("server_error", meta.server_error(self.rng))
        bucket = self._buckets.get(number.channel_id)
        if bucket is not None and not bucket.try_take(now):
            raise _Refused("rate_limited", meta.rate_limited(status, self.rng))
        pairs = self._pairs.get(number.channel_id)
        if pairs is not None and not pairs.try_take(call.wa_id, now):
            raise _Refused("pair_rate_limited", meta.pair_rate_limited(status, self.rng))

    # -- Evolution -----------------------------------------------------------------------------

    def evolution_request(self, instance: str, apikey: str | None, raw: bytes) -> Reply:
        number = self._evolution.get(instance)
        try:
            if number is None:
                raise _Refused("invalid", evolution.unknown_instance(instance))
            expected = number.api_key.get_secret_value() if number.api_key else None
            if expected is not None and apikey != expected:
                raise _Refused("unauthorized", evolution.unauthorized())
            data = _json(raw, lambda: evolution.error(400, "Bad Request", ["invalid JSON body"]))
            call = _guard(lambda: evolution.parse_send_text(data))
            if self._draw(self.settings.errors.server_error_rate):
                raise _Refused("server_error", evolution.server_error())
        except _Refused as refused:
            if number is not None:
                self._count(number, refused.outcome)
            return self._reply(refused.error.status, refused.error.body)
        accepted = self._accept(number, call, evolution.new_message_id(self.rng))
        extra = call.delay_ms / 1000
        if self._draw(self.settings.errors.lost_response_rate):
            self._count(number, "lost_response")
            error = evolution.server_error()
            return self._reply(error.status, error.body, extra)
        self._count(number, "accepted")
        return self._reply(201, evolution.send_answer(accepted), extra)

    # -- acceptance ------------------------------------------------------------------------------

    def _accept(self, number: NumberConfig, call: SendCall, message_id: str) -> Accepted:
        accepted = Accepted(number, call, message_id, self.wall(), self.audit_log.next_seq())
        self.audit_log.append(
            AuditRecord(
                ts=accepted.accepted_at,
                seq=accepted.seq,
                provider=number.provider,
                phone_number_id=number.key,
                channel_id=number.channel_id,
                to=call.to,
                wa_id=call.wa_id,
                wamid=message_id,
                type=call.type,
                biz_opaque_callback_data=call.biz_opaque_callback_data,
                content_sha256=content_hash(call.content),
            )
        )
        if self.settings.webhooks.enabled:
            fmt = self._formats[number.provider]
            chain = Chain(
                number, self.settings.webhook_url(number), fmt, self.clock(), self._plan(accepted)
            )
            self.dispatcher.submit(chain)
        return accepted

    def _plan(self, accepted: Accepted) -> deque[Step]:
        """The webhooks of one accepted send, with offsets from acceptance (non-decreasing)."""
        s, fmt = self.settings.statuses, self._formats[accepted.number.provider]
        steps: deque[Step] = deque()

        def add(after_ms: float, make: Callable[[datetime], Any]) -> None:
            after_ms = max(after_ms, steps[-1].offset_s * 1000 if steps else 0.0)
            at = accepted.accepted_at + timedelta(milliseconds=after_ms)
            steps.append(Step(after_ms / 1000, make(at)))

        failed = accepted.call.wa_id in s.undeliverable or self._draw(s.failed_probability)
        if failed:
            add(
                s.sent_after_ms,
                lambda at: fmt.status_item(accepted, "failed", at, error_code=s.failed_code),
            )
            return steps
        add(s.sent_after_ms, lambda at: fmt.status_item(accepted, "sent", at))
        if self._draw(s.delivered_probability):
            add(s.delivered_after_ms, lambda at: fmt.status_item(accepted, "delivered", at))
            if self._draw(s.read_probability):
                add(s.read_after_ms, lambda at: fmt.status_item(accepted, "read", at))
        replies = self.settings.replies
        if self._draw(replies.probability):
            text = self.rng.choice(replies.texts)
            after = steps[-1].offset_s * 1000 + replies.after_ms
            add(
                after, lambda at: fmt.reply_item(accepted, text, replies.contact_name, at, self.rng)
            )
        return steps

    # -- helpers ---------------------------------------------------------------------------------

    def start_storm(self, seconds: float) -> None:
        self.storm.start(self.clock(), seconds)

    def snapshot(self) -> JsonDict:
        """``GET /_stats``."""
        return {
            **self.stats.as_dict(webhooks_pending=self.dispatcher.pending),
            "audit": {"last_seq": self.audit_log.last_seq, "written": self.audit_log.written},
            "storm_active": self.storm.active(self.clock()),
        }

    def _draw(self, probability: float) -> bool:
        return probability >= 1.0 or (probability > 0.0 and self.rng.random() < probability)

    def _count(self, number: NumberConfig, outcome: Outcome) -> None:
        self.stats.record(number.channel_id, outcome, self.clock())

    def _reply(self, status: int, body: JsonDict, extra_s: float = 0.0) -> Reply:
        latency = self.settings.latency
        jitter = self.rng.uniform(0, latency.jitter_ms) if latency.jitter_ms else 0.0
        return Reply(status, body, (latency.fixed_ms + jitter) / 1000 + extra_s)


def _bearer_ok(number: NumberConfig, authorization: str | None) -> bool:
    if number.access_token is None:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and token.strip() == number.access_token.get_secret_value()


def _json(raw: bytes, invalid: Callable[[], WireError]) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise _Refused("invalid", invalid()) from None


def _guard(parse: Callable[[], _T]) -> _T:
    try:
        return parse()
    except WireError as exc:
        raise _Refused("invalid", exc) from None
