"""Composition root of the compliance service."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from importlib.resources import files
from typing import Final

from zapflow.compliance.adapters.clock import SystemClock
from zapflow.compliance.adapters.nats import RetryingPublisher
from zapflow.compliance.adapters.pg import PgStore
from zapflow.compliance.ports import Clock
from zapflow.compliance.scheduler import Scheduler
from zapflow.compliance.settings import Settings
from zapflow.compliance.subscribers import Deps, register_consumers, start_queries
from zapflow.contracts.streams import ZF_SENDER, consumers_owned_by, streams_owned_by
from zapflow.runtime.service import Service

NAME: Final = "compliance"


def create_service(settings: Settings, *, clock: Clock | None = None) -> Service:
    """The service; tests pass their own ``clock``."""

    async def setup(svc: Service) -> None:
        deps = Deps(
            store=PgStore(svc.pool),
            publish=RetryingPublisher(svc.publish),
            clock=clock or SystemClock(),
            unknown_channel_grace=timedelta(seconds=settings.unknown_channel_grace_s),
        )
        register_consumers(svc, deps, batch=settings.request_batch)
        for sub in await start_queries(svc, deps):
            svc.resources.push_async_callback(sub.unsubscribe)
        scheduler = Scheduler(
            deps.store,
            deps.publish,
            deps.clock,
            interval_s=settings.scheduler_interval_s,
            sweep_after_s=settings.outbox_sweep_after_s,
        )
        task = asyncio.create_task(scheduler.run(svc.stopping), name="compliance-scheduler")
        svc.resources.push_async_callback(asyncio.wait_for, task, settings.shutdown_grace_s)

    return Service(
        NAME,
        settings,
        # ZF_SENDER too: approvals must have a stream to land in even before the sender starts
        streams=(*streams_owned_by(NAME), ZF_SENDER),
        consumers=consumers_owned_by(NAME),
        migrations=files("zapflow.compliance") / "migrations",
        setup=setup,
        # transaction-scoped advisory locks only: nothing to reset when a connection goes back
        db_session_state=False,
    )
