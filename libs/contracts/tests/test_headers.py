"""Headers published with every event come from its envelope."""

from __future__ import annotations

from uuid import uuid4

from zapflow.contracts import headers
from zapflow.contracts.envelope import Event
from zapflow.contracts.subjects import CAMPAIGNS_RESUMED_V1


def test_event_headers_carry_id_type_and_tenant(samples: dict[str, Event]) -> None:
    event = samples[CAMPAIGNS_RESUMED_V1]
    assert headers.event_headers(event) == {
        "Nats-Msg-Id": str(event.id),
        "Zf-Type": CAMPAIGNS_RESUMED_V1,
        "Zf-Tenant": "acme",
        "Content-Type": "application/json",
    }


def test_correlation_id_is_added_when_set(samples: dict[str, Event]) -> None:
    correlation = uuid4()
    event = samples[CAMPAIGNS_RESUMED_V1].model_copy(update={"correlation_id": correlation})
    assert headers.event_headers(event)[headers.ZF_CORRELATION_ID] == str(correlation)
