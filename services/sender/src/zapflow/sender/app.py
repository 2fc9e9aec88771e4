"""Composition root of the sender service.

``create_service(settings)`` wires the ports to their adapters: attempt records in PostgreSQL,
channel settings replayed from ``ZF_CHANNELS``, credentials from the gateway, provider calls
through ``zapflow.providers`` (an ``httpx.AsyncClient`` per sending number on the sender's lean
transport), and a :class:`~zapflow.sender.worker.PartitionWorker` on each partition this replica
leases (``Service.partitioned``: the runtime's leases, fencing and supervision, started and
stopped with the service's consumers; stopping waits for the calls in flight). Each worker parks
what a channel holds beyond its memory budget in ``parked_sends`` (``zapflow.sender.parking``),
and in-doubt sends wait for the provider's statuses (``adapters.statuses``). Tests replace ports
with ``Overrides``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.resources import files
from typing import Final

from zapflow.contracts.access import streams_declared_by
from zapflow.contracts.streams import (
    SENDER_APPROVED,
    ConsumerSpec,
)
from zapflow.runtime import db
from zapflow.runtime.credentials import ChannelCredentials
from zapflow.runtime.partitions import Ownership
from zapflow.runtime.service import Service
from zapflow.sender import handlers
from zapflow.sender.adapters.channels import ChannelReplay
from zapflow.sender.adapters.pg import PgAttemptStore
from zapflow.sender.adapters.pg_park import PgParkStore
from zapflow.sender.adapters.provider import ProviderCalls
from zapflow.sender.adapters.statuses import StatusScans
from zapflow.sender.domain import AimdConfig, RetryPolicy
from zapflow.sender.pacing import Pacers
from zapflow.sender.parking import Budget
from zapflow.sender.ports import CredentialSource, ProviderPort
from zapflow.sender.settings import Settings
from zapflow.sender.sink import Sink
from zapflow.sender.worker import PartitionGuard, PartitionWorker

NAME: Final = "sender"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Overrides:
    """Ports a test replaces; None keeps the real adapter."""

    provider: ProviderPort | None = None
    credentials: CredentialSource | None = None


def create_service(settings: Settings, overrides: Overrides | None = None) -> Service:
    async def setup(svc: Service) -> None:
        await _setup(svc, settings, overrides or Overrides())

    return Service(
        NAME,
        settings,
        # also the streams it reads and writes but does not own (declaring them is idempotent,
        # so start-up order never matters). ZF_CHANNELS is read by every replica through its own
        # ordered consumer (adapters.channels): the shared durable ``sender-channels`` would
        # split the channels between the replicas, so it is not declared. ZF_MESSAGES is read
        # (status events, ordered consumers) only while a send is in doubt (adapters.statuses)
        streams=streams_declared_by(NAME),
        consumers=SENDER_APPROVED,
        migrations=files("zapflow.sender") / "migrations",
        setup=setup,
    )


async def _setup(svc: Service, s: Settings, overrides: Overrides) -> None:
    # httpx logs every request URL at INFO: noise, and Z-API URLs carry the instance token
    logging.getLogger("httpx").setLevel(logging.WARNING)
    calls = ProviderCalls(
        timeout_s=s.provider_timeout_s,
        max_connections=s.provider_max_connections,
        egress=s.egress_policy(),
    )
    svc.resources.push_async_callback(calls.aclose)
    channels = ChannelReplay(svc.js)
    await channels.start()
    svc.resources.push_async_callback(channels.stop)
    # a pool of its own, opened in full at start: a cold pool growing under the first burst
    # would delay the first attempts after their pace slots
    size = s.db_pool_size
    dsn = s.database_url.get_secret_value()
    pool = await db.create_pool(
        dsn, NAME, min_size=size, max_size=size, session_state=False, timeouts=s.db_timeouts()
    )
    svc.resources.push_async_callback(pool.close)
    store = PgAttemptStore(pool)
    credentials = overrides.credentials or ChannelCredentials(
        svc.nc, caller=NAME, ttl_s=s.credentials_ttl_s, timeout_s=s.credentials_timeout_s
    )
    provider = overrides.provider or calls
    policy = RetryPolicy(
        max_attempts=s.max_attempts,
        base_s=s.retry_base_s,
        cap_s=s.retry_cap_s,
        rate_limit_budget_s=s.rate_limit_budget_s,
    )
    aimd = AimdConfig(
        decrease=s.aimd_decrease,
        min_factor=s.aimd_min_factor,
        increase=s.aimd_increase,
        recover_every_s=s.aimd_recover_every_s,
        cooldown_s=s.aimd_cooldown_s,
        hold_s=s.aimd_hold_s,
    )
    publish = svc.publish
    sink = Sink(publish)
    statuses = StatusScans(svc.js)
    svc.resources.push_async_callback(statuses.close)

    def deps_for(guard: PartitionGuard, pacers: Pacers) -> handlers.Deps:
        return handlers.Deps(
            store=store,
            channels=channels,
            credentials=credentials,
            provider=provider,
            publish=publish,
            pacer_for=pacers.pacer_for,
            guard=guard,
            policy=policy,
            in_doubt_after_s=s.provider_timeout_s + s.in_doubt_margin_s,
            statuses=statuses,
            in_doubt_window_s=s.in_doubt_window_s,
        )

    park = PgParkStore(pool)
    budget = Budget(
        horizon_s=s.channel_budget_s,
        min_messages=s.channel_budget_min,
        max_messages=s.channel_budget_max,
    )

    def make_worker(spec: ConsumerSpec, ownership: Ownership) -> PartitionWorker:
        pacers = Pacers(store, aimd=aimd, headroom=s.pace_headroom)
        return PartitionWorker(
            svc.js, spec, deps_for, pacers, sink, park=park, budget=budget, holds=ownership.held
        )

    svc.partitioned(SENDER_APPROVED, make_worker, ttl_s=s.lease_ttl_s, renew_s=s.lease_renew_s)
