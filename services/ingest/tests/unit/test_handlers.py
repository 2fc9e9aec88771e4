"""The ingest-raw and ingest-outbound use cases with fakes for the store and the publisher."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from zapflow.contracts.common import SendOrigin
from zapflow.contracts.contacts.v1 import ContactUpdated
from zapflow.contracts.content import TextContent
from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.model import Party
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested
from zapflow.ingest.handlers import UnparseableWebhook, handle_raw, handle_send
from zapflow.ingest.outbound import SendEvent
from zapflow.ingest.ports import Ingested
from zapflow.providers import ParsedWebhook

META_TEXT = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages",'
    b'"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"1"},'
    b'"messages":[{"from":"5511999990001","id":"wamid.X","timestamp":"1763647200",'
    b'"type":"text","text":{"body":"oi"}}]}}]}]}'
)


def raw(body: bytes = META_TEXT, provider: str = "meta", b64: str | None = None) -> WebhookReceived:
    return WebhookReceived(
        tenant_id="acme",
        provider=provider,
        channel_id="ch-1",
        received_at=datetime.now(UTC),
        body_b64=b64 if b64 is not None else base64.b64encode(body).decode(),
        content_type="application/json",
    )


def contact_event(n: int = 0) -> ContactUpdated:
    return ContactUpdated(
        tenant_id="acme", contact_id=uuid4(), party=Party(phone="+5511999990001"), created=bool(n)
    )


@dataclass
class FakeStore:
    produce: list[Event] = field(default_factory=list)
    seen_before: bool = False
    media_jobs: int = 0
    ingested: list[ParsedWebhook] = field(default_factory=list)
    failures: list[tuple[UUID, str]] = field(default_factory=list)

    async def ingest(
        self, evt: WebhookReceived, body: bytes, parsed: ParsedWebhook
    ) -> Ingested | None:
        self.ingested.append(parsed)
        return None if self.seen_before else Ingested(self.produce, self.media_jobs)

    async def outbox(self, source_event_id: UUID) -> list[Event]:
        return self.produce

    async def record_failure(self, evt: WebhookReceived, body: bytes, error: str) -> None:
        self.failures.append((evt.id, error))


@dataclass
class FakePublisher:
    sent: list[tuple[str, Event]] = field(default_factory=list)
    fail: bool = False

    async def __call__(
        self, subject: str, event: Event, headers: dict[str, str] | None = None
    ) -> object:
        if self.fail:
            raise TimeoutError
        self.sent.append((subject, event))
        return None


async def test_parsed_webhook_is_stored_then_its_events_published() -> None:
    events = [contact_event(), contact_event(1)]
    store, publish = FakeStore(produce=events, media_jobs=1), FakePublisher()
    nudged: list[bool] = []
    await handle_raw(raw(), store=store, publish=publish, media_queued=lambda: nudged.append(True))
    (parsed,) = store.ingested
    assert [m.provider_message_id for m in parsed.messages] == ["wamid.X"]
    assert [e for _, e in publish.sent] == events
    assert {s for s, _ in publish.sent} == {"zf.contacts.updated.v1.acme"}
    assert nudged == [True]


async def test_webhook_processed_before_republishes_its_outbox() -> None:
    events = [contact_event()]
    store, publish = FakeStore(produce=events, seen_before=True), FakePublisher()
    await handle_raw(raw(), store=store, publish=publish)
    assert [e for _, e in publish.sent] == events


@pytest.mark.parametrize(
    ("evt", "code"),
    [
        (raw(b"<xml/>"), "unparseable"),
        (raw(provider="simulator"), "unknown_provider"),
        (raw(b64="not base64!"), "bad_body"),
    ],
)
async def test_unparseable_input_is_logged_failed_and_permanent(
    evt: WebhookReceived, code: str
) -> None:
    store, publish = FakeStore(), FakePublisher()
    with pytest.raises(UnparseableWebhook) as caught:
        await handle_raw(evt, store=store, publish=publish)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.code == code
    assert [i for i, _ in store.failures] == [evt.id]
    assert store.ingested == []
    assert publish.sent == []


async def test_publish_failure_is_transient_so_the_raw_event_is_retried() -> None:
    store, publish = FakeStore(produce=[contact_event()]), FakePublisher(fail=True)
    with pytest.raises(TransientError):
        await handle_raw(raw(), store=store, publish=publish)


def send_requested() -> SendRequested:
    request = SendRequest(
        message_id=uuid4(),
        channel_id="ch-1",
        to=Recipient(phone="+5511999990001"),
        content=TextContent(body="oi"),
        origin=SendOrigin.API,
        idempotency_key="k-1",
    )
    return SendRequested(tenant_id="acme", request=request)


@dataclass
class FakeOutboundStore:
    produce: list[Event] = field(default_factory=list)
    earlier: dict[UUID, list[Event]] = field(default_factory=dict)
    recorded: list[SendEvent] = field(default_factory=list)

    async def record(self, evt: SendEvent) -> list[Event] | None:
        self.recorded.append(evt)
        if evt.id in self.earlier:
            return None
        self.earlier[evt.id] = self.produce
        return self.produce

    async def outbox(self, source_event_id: UUID) -> list[Event]:
        return self.earlier[source_event_id]


async def test_send_event_is_recorded_then_its_events_published() -> None:
    events: list[Event] = [contact_event(), contact_event(1)]
    store, publish = FakeOutboundStore(produce=events), FakePublisher()
    evt = send_requested()
    await handle_send(evt, store=store, publish=publish)
    assert store.recorded == [evt]
    assert [e for _, e in publish.sent] == events


async def test_send_event_processed_before_republishes_its_first_outbox() -> None:
    first: list[Event] = [contact_event()]
    store, publish = FakeOutboundStore(produce=first), FakePublisher()
    evt = send_requested()
    await handle_send(evt, store=store, publish=publish)
    store.produce = [contact_event(1)]  # state moved on: a recomputation would differ
    await handle_send(evt, store=store, publish=publish)
    assert [e for _, e in publish.sent] == first + first


async def test_send_event_publish_failure_is_transient() -> None:
    store, publish = FakeOutboundStore(), FakePublisher(fail=True)
    store.produce.append(contact_event())
    with pytest.raises(TransientError):
        await handle_send(send_requested(), store=store, publish=publish)
