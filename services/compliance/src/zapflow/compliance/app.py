"""Composition root of the compliance service."""

from __future__ import annotations

import logging
from datetime import timedelta
from importlib.resources import files
from typing import Final

from zapflow.compliance.adapters.clock import SystemClock
from zapflow.compliance.adapters.nats import RetryingPublisher
from zapflow.compliance.adapters.pg import PgStore
from zapflow.compliance.ports import Clock, Store
from zapflow.compliance.scheduler import Scheduler
from zapflow.compliance.settings import Settings
from zapflow.compliance.subscribers import Deps, register_consumers, start_queries
from zapflow.contracts.access import streams_declared_by
from zapflow.contracts.streams import consumers_owned_by
from zapflow.runtime.service import Service

NAME: Final = "compliance"

logger = logging.getLogger(__name__)


async def _write_marks(store: Store) -> None:
    try:
        await store.write_marks()
    except Exception:  # the sweep publishes them again; JetStream drops the duplicates
        logger.warning("could not mark published outbox events", exc_info=True)


def create_service(settings: Settings, *, clock: Clock | None = None) -> Service:
    """The service; tests pass their own ``clock``."""

    async def setup(svc: Service) -> None:
        deps = Deps(
            store=PgStore(svc.pool),
            publish=RetryingPublisher(svc.publish),
            clock=clock or SystemClock(),
            unknown_channel_grace=timedelta(seconds=settings.unknown_channel_grace_s),
        )
        # last of the resources: marks of what the consumers and the scheduler published
        svc.resources.push_async_callback(_write_marks, deps.store)
        register_consumers(svc, deps, batch=settings.request_batch)
        await start_queries(svc, deps)
        scheduler = Scheduler(
            deps.store,
            deps.publish,
            deps.clock,
            interval_s=settings.scheduler_interval_s,
            sweep_after_s=settings.outbox_sweep_after_s,
        )
        svc.supervise("compliance-scheduler", scheduler.run)

    return Service(
        NAME,
        settings,
        # ZF_SENDER too: approvals must have a stream to land in even before the sender starts
        streams=streams_declared_by(NAME),
        consumers=consumers_owned_by(NAME),
        migrations=files("zapflow.compliance") / "migrations",
        setup=setup,
        # transaction-scoped advisory locks only: nothing to reset when a connection goes back
        db_session_state=False,
    )
