"""NATS edge: publishing with errors mapped to ``TransientError`` (queries are answered by
``zapflow.runtime.rpc``, see ``subscribers.start_queries``)."""

from __future__ import annotations

import nats.errors

from zapflow.compliance.ports import Publisher
from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import TransientError


class RetryingPublisher:
    """Wraps the runtime's JetStream publisher; a failed publish is worth a later retry."""

    def __init__(self, publish: Publisher) -> None:
        self._publish = publish

    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> object:
        try:
            return await self._publish(subject, event, headers)
        except (nats.errors.Error, TimeoutError) as exc:
            raise TransientError(f"publish failed: {type(exc).__name__}", code="publish") from exc
