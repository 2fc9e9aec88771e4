"""Types shared by the provider wire modules (:mod:`.meta`, :mod:`.evolution`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from zapflow.simulator.config import NumberConfig

JsonDict = dict[str, Any]
StatusName = Literal["sent", "delivered", "read", "failed"]


class WireError(Exception):
    """A request the provider refuses: the HTTP status and the provider's error body."""

    def __init__(self, status: int, body: JsonDict, *, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.body = body
        self.reason = reason


@dataclass(frozen=True)
class SendCall:
    """A well-formed send request, as the provider understood it."""

    to: str  # as given
    wa_id: str  # digits
    type: str
    content: JsonDict  # the typed object (and context), hashed into the audit log
    biz_opaque_callback_data: str | None = None
    reply_to: str | None = None
    delay_ms: float = 0.0  # Evolution's typing delay


@dataclass(frozen=True)
class Accepted:
    """A send the provider accepted, with the id it gave it."""

    number: NumberConfig
    call: SendCall
    message_id: str
    accepted_at: datetime
    seq: int


@dataclass(frozen=True)
class WebhookItem:
    """One status or inbound message to deliver inside a webhook body."""

    kind: Literal["status", "message"]
    data: JsonDict
    contact: JsonDict | None = field(default=None)


class WebhookFormat(Protocol):
    """How a provider shapes (and signs) its webhooks."""

    batchable: bool

    def status_item(
        self, accepted: Accepted, status: StatusName, at: datetime, *, error_code: int = 0
    ) -> WebhookItem:
        """The status ``status`` of ``accepted``, as it happened at ``at`` (``error_code`` for
        ``failed``)."""
        ...

    def reply_item(
        self, accepted: Accepted, text: str, name: str, at: datetime, rng: random.Random
    ) -> WebhookItem:
        """A text message from the recipient of ``accepted`` quoting it."""
        ...

    def encode(
        self, number: NumberConfig, items: Sequence[WebhookItem]
    ) -> tuple[bytes, dict[str, str]]:
        """The raw body and headers of one webhook POST carrying ``items``."""
        ...
