"""The send API over in-memory fakes: answers, the event it enqueues, idempotency, validation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from zapflow.contracts.common import ActorKind, SendOrigin, SendPriority
from zapflow.contracts.content import MediaContent, TemplateButtonParameter, TemplateContent
from zapflow.contracts.queries import ingest_v1 as q
from zapflow.contracts.sending.v1 import SendRequested
from zapflow.contracts.subjects import send_requested, subject_for
from zapflow.gateway import sends
from zapflow.gateway.auth import Principal
from zapflow.gateway.command_log import SendRecord
from zapflow.gateway.errors import ConflictError
from zapflow.gateway.send_schemas import MessageIn, TemplateIn, to_contract

TENANT, PHONE = "acme", "+5511999990001"
TEXT = {"kind": "text", "body": "Seu pedido saiu para entrega"}


def to_phone(**extra: Any) -> dict[str, Any]:
    return {"channel_id": "loja", "to": PHONE, "content": TEXT, **extra}


@pytest.fixture
def api(rest_api: Any) -> Any:
    rest_api.log.channels[(TENANT, "loja")] = True
    return rest_api


def only_event(api: Any) -> SendRequested:
    assert len(api.log.events) == 1
    event = api.log.events[0]
    assert isinstance(event, SendRequested)
    return event


# -- POST /v1/messages ------------------------------------------------------------------------


async def test_a_send_is_accepted_with_the_event_enqueued(api: Any) -> None:
    response = await api.client.post(
        "/v1/messages", json=to_phone(reply_to="wamid.Q1"), headers={"Idempotency-Key": "o-1"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    event = only_event(api)
    request = event.request
    assert body == {
        "message_id": str(request.message_id),
        "status": "queued",
        "channel_id": "loja",
        "conversation_id": None,
        "idempotency_key": "o-1",
    }
    assert event.tenant_id == TENANT
    assert subject_for(event) == send_requested(TENANT, "loja")
    assert request.to.phone == PHONE
    assert request.content.model_dump() == {**TEXT, "preview_url": False}
    assert type(request.content).__name__ == "TextContent"  # the contract's, not the strict one
    assert request.reply_to == "wamid.Q1"
    assert request.origin is SendOrigin.API
    assert request.priority is SendPriority.NORMAL
    assert request.requested_by is not None
    assert (request.requested_by.kind, request.requested_by.id) == (ActorKind.API_KEY, "key-1")
    assert request.idempotency_key == "o-1"


async def test_without_a_key_the_message_id_is_the_key(api: Any) -> None:
    response = await api.client.post("/v1/messages", json=to_phone())
    assert response.status_code == 202
    body = response.json()
    assert body["idempotency_key"] == body["message_id"]
    assert only_event(api).request.idempotency_key == body["message_id"]
    again = await api.client.post("/v1/messages", json=to_phone())
    assert again.json()["message_id"] != body["message_id"]  # no key: two sends


async def test_the_same_key_and_request_answer_the_same_message_once(api: Any) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    first = await api.client.post("/v1/messages", json=to_phone(), headers=headers)
    spelled_out = to_phone(content={"preview_url": False, **TEXT}, priority="normal", reply_to=None)
    again = await api.client.post("/v1/messages", json=spelled_out, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    only_event(api)


async def test_the_same_key_with_another_request_is_409(api: Any) -> None:
    headers = {"Idempotency-Key": "k-2"}
    assert (await api.client.post("/v1/messages", json=to_phone(), headers=headers)).is_success
    other = to_phone(content={"kind": "text", "body": "outro texto"})
    response = await api.client.post("/v1/messages", json=other, headers=headers)
    assert response.status_code == 409
    assert response.json() == {"error": sends.KEY_REUSED}
    only_event(api)


async def test_keys_are_per_tenant(api: Any) -> None:
    api.log.sends[("other", "k-3")] = SendRecord(
        "other", "k-3", b"x", uuid4(), uuid4(), "theirs", None
    )
    response = await api.client.post(
        "/v1/messages", json=to_phone(), headers={"Idempotency-Key": "k-3"}
    )
    assert response.status_code == 202
    assert response.json()["channel_id"] == "loja"


async def test_another_tenants_or_unknown_channel_is_404_and_disabled_is_409(api: Any) -> None:
    api.log.channels[("other", "theirs")] = True
    api.log.channels[(TENANT, "off")] = False
    theirs = await api.client.post("/v1/messages", json=to_phone(channel_id="theirs"))
    assert (theirs.status_code, theirs.json()) == (404, {"error": "unknown channel"})
    off = await api.client.post("/v1/messages", json=to_phone(channel_id="off"))
    assert (off.status_code, off.json()) == (409, {"error": "channel disabled"})
    assert api.log.events == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (to_phone(to="11999990001"), "to: String should match pattern"),
        (to_phone(channel_id="Loja Centro"), "channel_id: String should match pattern"),
        (to_phone(colour="blue"), "colour: Extra inputs are not permitted"),
        (to_phone(content={"kind": "text", "body": ""}), "content.text.body: String should"),
        (to_phone(content={"kind": "text", "body": "x", "bold": True}), "content.text.bold: Extra"),
        (to_phone(content={"kind": "fax", "body": "x"}), "content: Input tag 'fax'"),
        (to_phone(content={"kind": "media", "media_type": "image"}), "content.media: Value error"),
        (
            to_phone(content={"kind": "media", "media_type": "image", "url": "ftp://x/y.png"}),
            "content.media.url: String should match pattern",
        ),
        (
            to_phone(
                content={
                    "kind": "template",
                    "name": "pedido",
                    "language": "pt_BR",
                    "buttons": [{"index": 0, "sub_type": "url", "value": "a", "extra": 1}],
                }
            ),
            "content.template.buttons.0.extra: Extra inputs are not permitted",
        ),
        (to_phone(not_after="2030-01-01T00:00:00"), "not_after: Input should have timezone"),
        ({"to": PHONE, "content": TEXT}, "channel_id: Field required"),
    ],
)
async def test_invalid_sends_are_400_with_reasons(api: Any, body: Any, reason: str) -> None:
    response = await api.client.post("/v1/messages", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid request"
    assert any(r.startswith(reason) for r in response.json()["reasons"]), response.json()
    assert api.log.events == []


@pytest.mark.parametrize("key", ["", "has space", "é", "k" * 201])
async def test_a_malformed_idempotency_key_is_400(api: Any, key: str) -> None:
    response = await api.client.post(
        "/v1/messages", json=to_phone(), headers={"Idempotency-Key": key.encode()}
    )
    assert response.status_code == 400, response.text
    assert response.json()["reasons"][0].startswith("header.Idempotency-Key:")


async def test_not_json_is_400(api: Any) -> None:
    response = await api.client.post(
        "/v1/messages", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid request"


async def test_missing_key_is_401(rest_api: Any) -> None:
    rest_api.app.dependency_overrides.clear()  # the real authentication
    response = await rest_api.client.post("/v1/messages", json=to_phone())
    assert (response.status_code, response.json()) == (401, {"error": "missing API key"})


# -- POST /v1/conversations/{id}/messages -----------------------------------------------------


def conversation(conversation_id: UUID, phone: str | None = PHONE) -> q.ConversationView:
    now = datetime.now(UTC)
    contact = q.ContactView(
        id=uuid4(), phone=phone, wa_id="5511999990001", created_at=now, updated_at=now
    )
    return q.ConversationView(
        id=conversation_id,
        channel_id="loja",
        contact=contact,
        status="open",
        unread_count=0,
        last_message_at=now,
        created_at=now,
    )


def ingest_knows(api: Any, found: q.ConversationView | None) -> None:
    def answer(request: dict[str, Any]) -> q.ConversationReply:
        assert request["tenant_id"] == TENANT
        mine = found is not None and request["conversation_id"] == str(found.id)
        return q.ConversationReply(conversation=found if mine else None)

    api.nats.answers[q.GET_CONVERSATION] = answer


async def test_a_conversation_send_goes_to_its_contact_on_its_channel(api: Any) -> None:
    conv = conversation(uuid4())
    ingest_knows(api, conv)
    response = await api.client.post(
        f"/v1/conversations/{conv.id}/messages", json={"content": TEXT}
    )
    assert response.status_code == 202, response.text
    request = only_event(api).request
    assert response.json()["conversation_id"] == str(conv.id)
    assert request.conversation_id == conv.id
    assert request.channel_id == "loja"
    assert (request.to.phone, request.to.wa_id, request.to.contact_id) == (
        PHONE,
        "5511999990001",
        conv.contact.id,
    )


async def test_an_unknown_conversation_is_404_and_a_silent_ingest_503(api: Any) -> None:
    path = f"/v1/conversations/{uuid4()}/messages"
    silent = await api.client.post(path, json={"content": TEXT})
    assert (silent.status_code, silent.headers["retry-after"]) == (503, "1")
    ingest_knows(api, conversation(uuid4()))
    missing = await api.client.post(path, json={"content": TEXT})
    assert (missing.status_code, missing.json()) == (404, {"error": "conversation not found"})
    assert api.log.events == []


async def test_a_replayed_conversation_send_does_not_ask_ingest_again(api: Any) -> None:
    conv = conversation(uuid4())
    ingest_knows(api, conv)
    path, headers = f"/v1/conversations/{conv.id}/messages", {"Idempotency-Key": "c-1"}
    first = await api.client.post(path, json={"content": TEXT}, headers=headers)
    del api.nats.answers[q.GET_CONVERSATION]  # ingest gone: a replay still answers
    again = await api.client.post(path, json={"content": TEXT}, headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    elsewhere = await api.client.post(
        "/v1/messages", json={**to_phone(), "content": TEXT}, headers=headers
    )
    assert elsewhere.json() == {"error": sends.KEY_REUSED}  # same key, another target
    only_event(api)


async def test_a_contact_without_address_is_409(api: Any) -> None:
    conv = conversation(uuid4(), phone=None)
    conv = conv.model_copy(update={"contact": conv.contact.model_copy(update={"wa_id": None})})
    ingest_knows(api, conv)
    response = await api.client.post(
        f"/v1/conversations/{conv.id}/messages", json={"content": TEXT}
    )
    assert response.status_code == 409


# -- the use case -----------------------------------------------------------------------------


class RacingLog:
    """A log where another request took every key just before us."""

    def __init__(self, winner: SendRecord) -> None:
        self.winner = winner

    async def channel_enabled(self, tenant_id: str, channel_id: str) -> bool:
        return True

    async def record_send(self, record: SendRecord, event: SendRequested) -> SendRecord:
        return self.winner


async def test_losing_a_race_for_the_key_answers_the_winner_or_409() -> None:
    body = MessageIn.model_validate(to_phone())
    fingerprint = sends.fingerprint(body, None)
    who = Principal(TENANT, "key-1", frozenset())
    winner = SendRecord(TENANT, "k", fingerprint, uuid4(), uuid4(), "loja", None)
    target = sends.phone_target(body)
    accepted = await sends.submit(
        RacingLog(winner), who, body, target, key="k", fingerprint_=fingerprint
    )
    assert accepted.message_id == winner.message_id
    with pytest.raises(ConflictError, match="Idempotency-Key"):
        await sends.submit(RacingLog(winner), who, body, target, key="k", fingerprint_=b"other")


def test_template_content_becomes_the_contract_types() -> None:
    template = TemplateIn.model_validate(
        {
            "kind": "template",
            "name": "pedido_enviado",
            "language": "pt_BR",
            "body_params": ["Ana", "#123"],
            "header_media": {"kind": "media", "media_type": "image", "stored_key": "t/abc"},
            "buttons": [{"index": 0, "sub_type": "url", "value": "123"}],
        }
    )
    content = to_contract(template)
    assert type(content) is TemplateContent
    assert type(content.header_media) is MediaContent
    assert type(content.buttons[0]) is TemplateButtonParameter
    assert content.model_dump() == template.model_dump()


def test_fingerprints_differ_by_target_and_content_only() -> None:
    body = MessageIn.model_validate(to_phone())
    same = MessageIn.model_validate({**to_phone(), "priority": "normal"})
    other = MessageIn.model_validate(to_phone(to="+5511999990002"))
    conversation_id = uuid4()
    assert sends.fingerprint(body, None) == sends.fingerprint(same, None)
    assert sends.fingerprint(body, None) != sends.fingerprint(other, None)
    assert sends.fingerprint(body, None) != sends.fingerprint(body, conversation_id)
