"""Status webhooks reach a fake gateway on a free port: signed so ``zapflow.providers`` verifies
them, parsed into canonical statuses with the right ids, in order, retried, with replies."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette

from zapflow.contracts.model import DeliveryStatus
from zapflow.providers import get_adapter
from zapflow.providers.base import ChannelSecrets
from zapflow.simulator import create_app, meta_webhooks
from zapflow.simulator.config import NumberConfig, SimulatorSettings
from zapflow.simulator.testing import FakeGateway, bearer, meta_path, serve

Client = Callable[[Starlette], httpx.AsyncClient]
Settings = Callable[..., SimulatorSettings]
FAST = {"sent_after_ms": 5, "delivered_after_ms": 10, "read_after_ms": 15, "read_probability": 1}


def text(to: str, opaque: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "text",
        "text": {"body": "Olá"},
    }
    if opaque is not None:
        body["biz_opaque_callback_data"] = opaque
    return body


async def post(
    client: httpx.AsyncClient, number: NumberConfig, to: str, opaque: str | None = None
) -> str:
    """Send a text; the wamid the simulator answered."""
    response = await client.post(meta_path(number), json=text(to, opaque), headers=bearer(number))
    assert response.status_code == 200
    wamid: str = response.json()["messages"][0]["id"]
    return wamid


def verified_statuses(
    received: list[tuple[dict[str, str], bytes, str]], number: NumberConfig
) -> dict[str, list[DeliveryStatus]]:
    """Statuses per provider message id, in arrival order, after verifying every signature."""
    assert number.app_secret is not None
    adapter = get_adapter("meta")
    secrets = ChannelSecrets(app_secret=number.app_secret.get_secret_value())
    seen: dict[str, list[DeliveryStatus]] = defaultdict(list)
    for headers, body, path in received:
        assert path == f"/webhooks/meta/{number.channel_id}"
        adapter.verify_webhook(headers, body, {}, secrets)
        for status in adapter.parse_webhook(body, "application/json").statuses:
            seen[status.provider_message_id].append(status.status)
    return seen


async def test_signed_statuses_arrive_in_order_with_the_sent_ids(
    make_settings: Settings,
    client_for: Client,
    number: NumberConfig,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    app = create_app(make_settings(gateway_url=url, webhooks={}, statuses=FAST))
    async with app.state.simulator.running(), client_for(app) as client:
        wamids = [await post(client, number, f"551199999000{i}", f"zf-{i}") for i in range(1, 6)]
        async with asyncio.timeout(10):
            await app.state.simulator.dispatcher.wait_idle()

    seen = verified_statuses(fake.received, number)
    assert sorted(seen) == sorted(wamids)
    order = [DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ]
    assert all(seen[w] == order for w in wamids)
    first = json.loads(fake.received[0][1])
    status = first["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["biz_opaque_callback_data"] == f"zf-{wamids.index(status['id']) + 1}"
    assert first["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == (
        number.phone_number_id
    )


async def test_refused_webhooks_are_retried_and_order_holds(
    make_settings: Settings,
    client_for: Client,
    number: NumberConfig,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    fake.refuse_with.extend([500, 503, 401])
    webhooks = {"initial_backoff_ms": 5, "max_backoff_ms": 20}
    app = create_app(make_settings(gateway_url=url, webhooks=webhooks, statuses=FAST))
    async with app.state.simulator.running(), client_for(app) as client:
        wamid = await post(client, number, "5511999990001")
        async with asyncio.timeout(10):
            await fake.wait_for(3)
            await app.state.simulator.dispatcher.wait_idle()
        stats = (await client.get("/_stats")).json()["webhooks"]

    assert verified_statuses(fake.received, number) == {
        wamid: [DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ]
    }
    assert fake.answered == [500, 503, 401, 200, 200, 200]
    assert (stats["retries"], stats["delivered"], stats["pending"]) == (3, 3, 0)


async def test_gives_up_after_max_attempts_and_moves_on(
    make_settings: Settings,
    client_for: Client,
    number: NumberConfig,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    fake.refuse_with.extend([500, 500])
    webhooks = {"initial_backoff_ms": 5, "max_attempts": 2}
    statuses = FAST | {"read_probability": 0}
    app = create_app(make_settings(gateway_url=url, webhooks=webhooks, statuses=statuses))
    async with app.state.simulator.running(), client_for(app) as client:
        await post(client, number, "5511999990001")
        async with asyncio.timeout(10):
            await app.state.simulator.dispatcher.wait_idle()
        stats = (await client.get("/_stats")).json()["webhooks"]

    (statuses_seen,) = verify_all(fake, number)
    assert statuses_seen == [DeliveryStatus.DELIVERED]  # "sent" was abandoned after 2 attempts
    assert stats["abandoned"] == 1


def verify_all(fake: FakeGateway, number: NumberConfig) -> list[list[DeliveryStatus]]:
    return list(verified_statuses(fake.received, number).values())


async def test_inbound_replies_quote_the_message_and_escape_like_meta(
    make_settings: Settings,
    client_for: Client,
    number: NumberConfig,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    replies = {"probability": 1, "after_ms": 5, "texts": ["Até já / obrigado"]}
    app = create_app(make_settings(gateway_url=url, webhooks={}, statuses=FAST, replies=replies))
    async with app.state.simulator.running(), client_for(app) as client:
        wamid = await post(client, number, "5511999990001")
        async with asyncio.timeout(10):
            await fake.wait_for(4)

    headers, body, _ = fake.received[-1]
    assert b"At\\u00e9 j\\u00e1 \\/ obrigado" in body  # Meta's raw escaping; verify the bytes
    adapter = get_adapter("meta")
    assert number.app_secret is not None
    adapter.verify_webhook(
        headers, body, {}, ChannelSecrets(app_secret=number.app_secret.get_secret_value())
    )
    (message,) = adapter.parse_webhook(body, "application/json").messages
    assert message.text == "Até já / obrigado"
    assert message.reply_to == wamid
    assert message.contact.phone == "+5511999990001"
    assert message.provider_message_id.startswith("wamid.")


async def test_undeliverable_recipients_get_a_failed_status(
    make_settings: Settings,
    client_for: Client,
    number: NumberConfig,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    statuses = FAST | {"undeliverable": ["5511999990009"]}
    app = create_app(make_settings(gateway_url=url, webhooks={}, statuses=statuses))
    async with app.state.simulator.running(), client_for(app) as client:
        await post(client, number, "5511999990009")
        async with asyncio.timeout(10):
            await fake.wait_for(1)

    (status,) = get_adapter("meta").parse_webhook(fake.received[0][1], "application/json").statuses
    assert status.status is DeliveryStatus.FAILED
    assert status.error_code == "131026"


async def test_batched_statuses_share_one_signed_post(
    make_settings: Settings,
    client_for: Client,
    number: NumberConfig,
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, url = gateway
    statuses = {"sent_after_ms": 50, "delivered_probability": 0}
    webhooks = {"batch_max": 50, "concurrency": 1}
    app = create_app(make_settings(gateway_url=url, webhooks=webhooks, statuses=statuses))
    async with app.state.simulator.running(), client_for(app) as client:
        for i in range(10):
            await post(client, number, f"55119999900{i:02d}")
        async with asyncio.timeout(10):
            await app.state.simulator.dispatcher.wait_idle()

    assert sum(len(v) for v in verified_statuses(fake.received, number).values()) == 10
    assert len(fake.received) < 10


async def test_whole_simulator_over_http(
    make_settings: Settings, number: NumberConfig, gateway: tuple[FakeGateway, str]
) -> None:
    fake, url = gateway
    app = create_app(make_settings(gateway_url=url, webhooks={}, statuses=FAST))
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
        wamid = await post(client, number, "5511999990001")
        async with asyncio.timeout(10):
            await fake.wait_for(3)
        audit = (await client.get("/_audit")).text.splitlines()

    assert [json.loads(line)["wamid"] for line in audit] == [wamid]


def test_encoding_and_signature_reproduce_metas_vector(meta_fixture: Callable[[str], Any]) -> None:
    vector = meta_fixture("signature_example.json")
    raw = vector["raw_body"].encode()

    assert meta_webhooks.encode_json(json.loads(raw)) == raw  # same escapes as Meta's bodies
    assert meta_webhooks.signature(vector["app_secret"], raw) == vector["header_value"]
