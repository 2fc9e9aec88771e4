"""The Meta endpoint answers in the shapes of the recorded payloads, and the sender's adapter
(``zapflow.providers`` Meta) reads those answers as it would Meta's."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from zapflow.providers import get_adapter
from zapflow.providers.base import ChannelConfig, OutboundContent, ReplyTo
from zapflow.providers.errors import AuthenticationError, InvalidRequestError
from zapflow.simulator import create_app
from zapflow.simulator.config import NumberConfig, SimulatorSettings
from zapflow.simulator.testing import bearer, meta_path

SEND_REQUESTS = [
    "send_text_request.json",
    "send_image_request.json",
    "send_image_by_id_request.json",
    "send_template_request.json",
    "send_interactive_buttons_request.json",
    "send_interactive_list_request.json",
    "send_reply_request.json",
]

Client = Callable[[Starlette], httpx.AsyncClient]


def shape(value: Any) -> Any:
    """Keys and value types, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


@pytest.fixture
def app(make_settings: Callable[..., SimulatorSettings]) -> Starlette:
    return create_app(make_settings())


@pytest.mark.parametrize("request_file", SEND_REQUESTS)
async def test_each_recorded_send_request_is_accepted_like_meta(
    app: Starlette,
    client_for: Client,
    number: NumberConfig,
    meta_fixture: Callable[[str], Any],
    request_file: str,
) -> None:
    body = meta_fixture(request_file)
    async with client_for(app) as client:
        response = await client.post(meta_path(number), json=body, headers=bearer(number))

    assert response.status_code == 200
    answer = response.json()
    recorded = meta_fixture(
        "send_template_response.json" if body["type"] == "template" else "send_text_response.json"
    )
    assert shape(answer) == shape(recorded)
    assert answer["contacts"] == [{"input": body["to"], "wa_id": body["to"]}]
    wamid = answer["messages"][0]["id"]
    assert wamid.startswith("wamid.HBgN")
    assert body["to"].encode() in base64.b64decode(wamid.removeprefix("wamid."))


async def test_mark_as_read_answers_success(
    app: Starlette, client_for: Client, number: NumberConfig, meta_fixture: Callable[[str], Any]
) -> None:
    async with client_for(app) as client:
        response = await client.post(
            meta_path(number), json=meta_fixture("mark_read_request.json"), headers=bearer(number)
        )

    assert response.status_code == 200
    assert response.json() == meta_fixture("mark_read_response.json")


async def test_every_accepted_send_gets_a_new_id(
    app: Starlette, client_for: Client, number: NumberConfig, meta_fixture: Callable[[str], Any]
) -> None:
    body = meta_fixture("send_text_request.json")
    async with client_for(app) as client:
        answers = [
            (await client.post(meta_path(number), json=body, headers=bearer(number))).json()
            for _ in range(50)
        ]

    assert len({a["messages"][0]["id"] for a in answers}) == 50


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, 190),
        ({"Authorization": "Bearer wrong"}, 401, 190),
        ({"Authorization": "Basic test-access-token"}, 401, 190),
    ],
)
async def test_access_token_is_checked(
    app: Starlette,
    client_for: Client,
    number: NumberConfig,
    meta_fixture: Callable[[str], Any],
    headers: dict[str, str],
    status: int,
    code: int,
) -> None:
    async with client_for(app) as client:
        response = await client.post(
            meta_path(number), json=meta_fixture("send_text_request.json"), headers=headers
        )

    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == meta_fixture("error_token_expired.json")["error"]["type"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", 100),
        (b'{"to": "5511999990001", "type": "text", "text": {"body": "x"}}', 100),
        (b'{"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}', 100),
        (b'{"messaging_product": "whatsapp", "to": "5511999990001", "type": "text"}', 100),
        (
            b'{"messaging_product": "whatsapp", "to": "x", "type": "text", "text": {"body": "x"}}',
            100,
        ),
        (b'{"messaging_product": "whatsapp", "to": "5511999990001", "type": "nope"}', 100),
        (b'{"messaging_product": "whatsapp", "status": "read", "message_id": "bad"}', 131009),
    ],
)
async def test_malformed_requests_get_meta_errors(
    app: Starlette, client_for: Client, number: NumberConfig, body: bytes, code: int
) -> None:
    async with client_for(app) as client:
        response = await client.post(meta_path(number), content=body, headers=bearer(number))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert app.state.simulator.stats.numbers[number.channel_id].outcomes["invalid"] == 1


async def test_unknown_number_and_version(
    app: Starlette, client_for: Client, number: NumberConfig, meta_fixture: Callable[[str], Any]
) -> None:
    body = meta_fixture("send_text_request.json")
    async with client_for(app) as client:
        unknown = await client.post("/v21.0/1234/messages", json=body, headers=bearer(number))
        bad_version = await client.post(
            meta_path(number, version="latest"), json=body, headers=bearer(number)
        )

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, 100)
    assert unknown.json()["error"]["error_subcode"] == 33
    assert (bad_version.status_code, bad_version.json()["error"]["code"]) == (400, 2500)


# -- the sender's view: zapflow.providers' Meta adapter against the simulator ------------------


def _channel(number: NumberConfig, token: str | None = None) -> ChannelConfig:
    assert number.access_token is not None
    assert number.phone_number_id is not None
    return ChannelConfig(
        "meta",
        "http://127.0.0.1:8086/v21.0",
        {
            "access_token": token or number.access_token.get_secret_value(),
            "phone_number_id": number.phone_number_id,
        },
    )


async def test_meta_adapter_sends_through_the_simulator(
    app: Starlette, client_for: Client, number: NumberConfig
) -> None:
    adapter = get_adapter("meta")
    content = OutboundContent(
        to="+55 11 99999-0001", text="Oi Ana!", reply_to=ReplyTo("wamid.HBgNquoted")
    )
    async with client_for(app) as client:
        result = await adapter.send(client, content, _channel(number))

    assert result.provider_message_id.startswith("wamid.")
    assert result.recipient is not None
    assert result.recipient.phone == "+5511999990001"
    (record,) = await app.state.simulator.audit_log.records()
    assert (record.wamid, record.to, record.type) == (
        result.provider_message_id,
        "5511999990001",
        "text",
    )


async def test_meta_adapter_classifies_the_simulators_errors(
    app: Starlette, client_for: Client, number: NumberConfig
) -> None:
    adapter = get_adapter("meta")
    async with client_for(app) as client:
        with pytest.raises(AuthenticationError):
            await adapter.send(
                client, OutboundContent(to="5511999990001", text="x"), _channel(number, "bad")
            )
        with pytest.raises(InvalidRequestError):
            await adapter.send(
                client, OutboundContent(to="5511999990001", text="x" * 5000), _channel(number)
            )
