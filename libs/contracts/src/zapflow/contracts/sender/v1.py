"""Commands to the sender v1 (work queue, partitioned by channel).

The subject carries tenant and channel; the stream maps them to a partition token, and each
partition is consumed by one sender replica at a time, so sends to one channel keep their order.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import SendRequest


class SendApproved(Event):
    """Compliance approved a send request: the sender must deliver it to the provider."""

    subject_fields: ClassVar[tuple[str, ...]] = ("tenant_id", "request.channel_id")
    type: Literal["zf.sender.send_approved.v1"] = "zf.sender.send_approved.v1"
    request: SendRequest
    decision_id: UUID
