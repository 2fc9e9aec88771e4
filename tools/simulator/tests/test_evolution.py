"""Evolution API v2 ``sendText``: answers shaped like the recordings, webhooks the Evolution
adapter of ``zapflow.providers`` accepts (``apikey`` in the envelope) and parses in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from zapflow.contracts.model import DeliveryStatus
from zapflow.providers import get_adapter
from zapflow.providers.base import ChannelConfig, ChannelSecrets, OutboundContent
from zapflow.simulator import create_app
from zapflow.simulator.config import NumberConfig, SimulatorSettings
from zapflow.simulator.testing import FakeGateway

Client = Callable[[Starlette], httpx.AsyncClient]
Settings = Callable[..., SimulatorSettings]
API_KEY = "F3A1C9E27B5D4C8A9E1F2D3B4A5C6E7F"
EVOLUTION = NumberConfig(
    channel_id="sim-evo", provider="evolution", instance="loja-centro", api_key=SecretStr(API_KEY)
)
FAST = {"sent_after_ms": 5, "delivered_after_ms": 10, "read_after_ms": 15, "read_probability": 1}


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


@pytest.fixture
def app(make_settings: Settings) -> Starlette:
    return create_app(make_settings(numbers=(EVOLUTION,)))


async def test_send_text_answers_201_like_evolution(
    app: Starlette, client_for: Client, evolution_fixture: Callable[[str], Any]
) -> None:
    async with client_for(app) as client:
        response = await client.post(
            "/message/sendText/loja-centro",
            json=evolution_fixture("send_text_request.json"),
            headers={"apikey": API_KEY},
        )

    assert response.status_code == 201
    assert shape(response.json()) == shape(evolution_fixture("send_text_response.json"))
    assert response.json()["key"]["remoteJid"] == "5511999990001@s.whatsapp.net"


@pytest.mark.parametrize(
    ("path", "headers", "status", "recorded"),
    [
        ("/message/sendText/loja-centro", {}, 401, "error_unauthorized.json"),
        ("/message/sendText/loja-norte", {"apikey": API_KEY}, 404, "error_instance_not_found.json"),
    ],
)
async def test_errors_look_like_evolution(
    app: Starlette,
    client_for: Client,
    evolution_fixture: Callable[[str], Any],
    path: str,
    headers: dict[str, str],
    status: int,
    recorded: str,
) -> None:
    async with client_for(app) as client:
        response = await client.post(
            path, json={"number": "5511999990001", "text": "x"}, headers=headers
        )

    assert response.status_code == status
    assert response.json() == evolution_fixture(recorded)


async def test_evolution_adapter_sends_and_statuses_come_back(
    make_settings: Settings, client_for: Client, gateway: tuple[FakeGateway, str]
) -> None:
    fake, url = gateway
    app = create_app(
        make_settings(numbers=(EVOLUTION,), gateway_url=url, webhooks={}, statuses=FAST)
    )
    adapter = get_adapter("evolution")
    channel = ChannelConfig(
        "evolution", "http://127.0.0.1:8086", {"api_key": API_KEY, "instance": "loja-centro"}
    )
    async with app.state.simulator.running(), client_for(app) as client:
        result = await adapter.send(client, OutboundContent(to="5511999990001", text="Oi"), channel)
        async with asyncio.timeout(10):
            await fake.wait_for(3)

    seen = []
    for headers, body, path in fake.received:
        assert path == "/webhooks/evolution/sim-evo"
        adapter.verify_webhook(headers, body, {}, ChannelSecrets(api_key=API_KEY))
        seen += [
            (s.provider_message_id, s.status)
            for s in adapter.parse_webhook(body, "application/json").statuses
        ]
    assert seen == [
        (result.provider_message_id, DeliveryStatus.SENT),
        (result.provider_message_id, DeliveryStatus.DELIVERED),
        (result.provider_message_id, DeliveryStatus.READ),
    ]
