"""Throughput (130429), pair rate (131056), storms and random errors."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from zapflow.providers import get_adapter
from zapflow.providers.errors import ProviderUnavailableError, RateLimitedError
from zapflow.simulator import create_app
from zapflow.simulator.audit import max_in_window
from zapflow.simulator.config import (
    NumberConfig,
    RateLimitConfig,
    SimulatorSettings,
    StormConfig,
)
from zapflow.simulator.core import Deps
from zapflow.simulator.limits import StormSchedule, TokenBucket
from zapflow.simulator.testing import FakeClock, bearer, meta_path

Client = Callable[[Starlette], httpx.AsyncClient]
Settings = Callable[..., SimulatorSettings]


def text(to: str = "5511999990001") -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": "oi"}}


async def send_many(
    client: httpx.AsyncClient, number: NumberConfig, count: int, to: str = "5511999990001"
) -> list[httpx.Response]:
    return [
        await client.post(meta_path(number), json=text(to), headers=bearer(number))
        for _ in range(count)
    ]


def test_token_bucket_allows_burst_then_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    assert [bucket.try_take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.try_take(0.1)
    assert not bucket.try_take(0.1)
    assert sum(bucket.try_take(100.0) for _ in range(10)) == 5  # never banks more than burst


def test_storm_schedule_periods() -> None:
    storm = StormSchedule(StormConfig(duration_s=2, start_after_s=1, every_s=10), started_at=0)
    assert [storm.active(t) for t in (0.5, 1.0, 2.9, 3.1, 11.5, 13.5)] == [
        False,
        True,
        True,
        False,
        True,
        False,
    ]
    storm.start(now=5.0, seconds=1.0)
    assert storm.active(5.5)
    assert not storm.active(6.5)


async def test_rate_limit_answers_130429_above_rate_plus_burst(
    make_settings: Settings,
    client_for: Client,
    number: NumberConfig,
    meta_fixture: Callable[[str], Any],
) -> None:
    clock = FakeClock()
    app = create_app(make_settings(rate_limit=RateLimitConfig(rate=10, burst=5)), Deps(clock=clock))
    async with client_for(app) as client:
        first = await send_many(client, number, 8)
        clock.advance(0.5)
        second = await send_many(client, number, 8)

    assert [r.status_code for r in first] == [200] * 5 + [400] * 3
    assert [r.status_code for r in second] == [200] * 5 + [400] * 3
    recorded = meta_fixture("error_rate_limit.json")["error"]
    error = first[-1].json()["error"]
    assert error.keys() == recorded.keys()
    assert (error["code"], error["message"], error["error_data"]) == (
        recorded["code"],
        recorded["message"],
        recorded["error_data"],
    )
    stats = app.state.simulator.stats.numbers[number.channel_id]
    assert (stats.outcomes["accepted"], stats.outcomes["rate_limited"]) == (10, 6)
    assert stats.max_per_1s == 10  # 5 + 10 * 0.5 inside one second


async def test_accepted_sends_never_exceed_rate_plus_burst_in_any_second(
    make_settings: Settings, client_for: Client, number: NumberConfig
) -> None:
    rate, burst = 40, 10
    app = create_app(make_settings(rate_limit=RateLimitConfig(rate=rate, burst=burst)))
    statuses: Counter[int] = Counter()

    async def hammer(client: httpx.AsyncClient, until: float) -> None:
        while time.monotonic() < until:
            response = await client.post(meta_path(number), json=text(), headers=bearer(number))
            statuses[response.status_code] += 1

    async with client_for(app) as client:
        until = time.monotonic() + 1.6
        await asyncio.gather(*(hammer(client, until) for _ in range(4)))

    records = await app.state.simulator.audit_log.records()
    assert statuses[400] > 0
    assert statuses[200] == len(records)
    assert burst + rate * 1.2 <= len(records) <= burst + rate * 1.7
    assert max_in_window([r.ts for r in records], 1.0) <= rate + burst
    assert app.state.simulator.stats.numbers[number.channel_id].max_per_1s <= rate + burst


async def test_pair_rate_limit_answers_131056_per_recipient(
    make_settings: Settings,
    client_for: Client,
    number: NumberConfig,
    meta_fixture: Callable[[str], Any],
) -> None:
    clock = FakeClock()
    app = create_app(
        make_settings(pair_rate_limit=RateLimitConfig(rate=1 / 6, burst=2)), Deps(clock=clock)
    )
    async with client_for(app) as client:
        ana = await send_many(client, number, 3, to="5511999990001")
        bruno = await send_many(client, number, 2, to="5511999990002")
        clock.advance(6.1)
        ana_later = await send_many(client, number, 2, to="5511999990001")

    assert [r.status_code for r in ana] == [200, 200, 400]
    assert [r.status_code for r in bruno] == [200, 200]
    assert [r.status_code for r in ana_later] == [200, 400]
    error = ana[-1].json()["error"]
    recorded = meta_fixture("error_pair_rate_limit.json")["error"]
    assert (error["code"], error["message"]) == (recorded["code"], recorded["message"])
    retry = get_adapter("meta").classify_error(400, ana[-1].content)
    assert isinstance(retry, RateLimitedError)
    assert retry.retry_after == 6.0


async def test_storm_on_demand_refuses_everything_then_ends(
    make_settings: Settings, client_for: Client, number: NumberConfig
) -> None:
    clock = FakeClock()
    app = create_app(make_settings(), Deps(clock=clock))
    async with client_for(app) as client:
        assert (await client.post("/_storm", json={"seconds": 3})).status_code == 200
        during = await send_many(client, number, 5)
        stats = (await client.get("/_stats")).json()
        clock.advance(3.0)
        after = await send_many(client, number, 2)

    assert {r.json()["error"]["code"] for r in during} == {130429}
    assert stats["storm_active"] is True
    assert stats["numbers"][number.channel_id]["storm_rate_limited"] == 5
    assert [r.status_code for r in after] == [200, 200]


async def test_configured_storm_comes_back_periodically(
    make_settings: Settings, client_for: Client, number: NumberConfig
) -> None:
    clock = FakeClock()
    storm = {"duration_s": 1, "start_after_s": 2, "every_s": 5}
    app = create_app(make_settings(storm=storm), Deps(clock=clock))
    seen = []
    async with client_for(app) as client:
        for _ in range(8):
            seen.append((await send_many(client, number, 1))[0].status_code)
            clock.advance(1.0)

    assert seen == [200, 200, 400, 200, 200, 200, 200, 400]


@pytest.mark.parametrize("rate", [0.1, 0.3])
async def test_server_error_rate_is_roughly_honoured(
    make_settings: Settings, client_for: Client, number: NumberConfig, rate: float
) -> None:
    app = create_app(make_settings(errors={"server_error_rate": rate}, seed=7))
    async with client_for(app) as client:
        responses = await send_many(client, number, 1500)

    failed = [r for r in responses if r.status_code >= 500]
    assert abs(len(failed) / len(responses) - rate) < 0.04
    assert {r.json()["error"]["code"] for r in failed} == {2, 131000}
    adapter = get_adapter("meta")
    assert all(
        isinstance(adapter.classify_error(r.status_code, r.content), ProviderUnavailableError)
        for r in failed
    )
    records = await app.state.simulator.audit_log.records()
    assert len(records) == len(responses) - len(failed)  # refused sends are not accepted


async def test_lost_responses_are_accepted_yet_answered_with_5xx(
    make_settings: Settings, client_for: Client, number: NumberConfig
) -> None:
    app = create_app(make_settings(errors={"lost_response_rate": 0.5}, seed=3))
    async with client_for(app) as client:
        responses = await send_many(client, number, 200)

    records = await app.state.simulator.audit_log.records()
    lost = sum(r.status_code >= 500 for r in responses)
    assert 60 < lost < 140
    assert len(records) == 200
    assert app.state.simulator.stats.numbers[number.channel_id].outcomes["lost_response"] == lost
