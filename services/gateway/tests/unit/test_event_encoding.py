"""The hot path serializes WebhookReceived itself: it must be exactly the contract."""

import base64
import json
from uuid import RFC_4122, UUID

from zapflow.contracts.inbound.v1 import WebhookReceived
from zapflow.contracts.subjects import subject_for, webhook_received
from zapflow.gateway.inbound_event import EVENT_TYPE, encode_event

BODY = b'{"object":"whatsapp_business_account","entry":[],"x":"\\u00e9\\/"}'


def test_the_json_has_every_field_of_the_contract_and_nothing_else() -> None:
    _, payload = encode_event(
        tenant_id="acme",
        provider="meta",
        channel_id="acme-meta",
        body=BODY,
        content_type="application/json",
        headers={},
        query={},
    )
    assert set(json.loads(payload)) == set(WebhookReceived.model_fields)


def test_it_validates_as_the_contract_with_the_exact_body() -> None:
    event_id, payload = encode_event(
        tenant_id="acme",
        provider="evolution",
        channel_id="acme-evo",
        body=BODY,
        content_type=None,
        headers={"content-encoding": "identity"},
        query={"event": "messages-upsert"},
    )
    event = WebhookReceived.model_validate_json(payload)
    assert str(event.id) == event_id
    assert event.type == EVENT_TYPE
    assert base64.b64decode(event.body_b64) == BODY
    assert event.occurred_at == event.received_at
    assert event.received_at.utcoffset() is not None
    assert (event.content_type, event.headers, event.query) == (
        None,
        {"content-encoding": "identity"},
        {"event": "messages-upsert"},
    )
    assert subject_for(event) == webhook_received("acme", "acme-evo")
    # and the model serializes to the same document
    assert json.loads(event.model_dump_json()) == json.loads(payload)


def test_event_ids_are_random_version_4_uuids() -> None:
    ids = {
        encode_event(
            tenant_id="acme",
            provider="meta",
            channel_id="c",
            body=b"",
            content_type=None,
            headers={},
            query={},
        )[0]
        for _ in range(1000)
    }
    assert len(ids) == 1000
    for event_id in list(ids)[:50]:
        parsed = UUID(event_id)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, RFC_4122, event_id)
