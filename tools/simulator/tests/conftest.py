"""Fixtures (tests are imported with ``importlib``, so helpers come as fixtures or from
``zapflow.simulator.testing``): ``number`` (the test's Meta number), ``make_settings``,
``client_for`` (in-process client of an app), ``gateway`` (a fake gateway on a free port) and
``meta_fixture`` / ``evolution_fixture`` (the recorded payloads in ``shared/providers``)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from zapflow.simulator.config import NumberConfig, SimulatorSettings
from zapflow.simulator.testing import FakeGateway, serve

BASE_URL = "http://127.0.0.1:8086"


@cache
def fixtures_root() -> Path:
    override = os.environ.get("ZF_PROVIDER_FIXTURES")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "providers"
        if (candidate / "meta").is_dir():
            return candidate
    raise pytest.UsageError("shared/providers not found (or set ZF_PROVIDER_FIXTURES)")


@pytest.fixture(scope="session")
def meta_fixture() -> Callable[[str], Any]:
    """``meta_fixture("send_text_request.json")`` -> the decoded file (a fresh copy)."""
    return lambda name: json.loads((fixtures_root() / "meta" / name).read_bytes())


@pytest.fixture(scope="session")
def evolution_fixture() -> Callable[[str], Any]:
    """``evolution_fixture("send_text_response.json")`` -> the decoded file (a fresh copy)."""
    return lambda name: json.loads((fixtures_root() / "evolution" / name).read_bytes())


@pytest.fixture(scope="session")
def number() -> NumberConfig:
    """The test's Meta number (the fixtures' phone_number_id and signature-vector secret)."""
    return NumberConfig(
        channel_id="sim-meta",
        phone_number_id="109876543210987",
        access_token=SecretStr("test-access-token"),
        app_secret=SecretStr("7c1f9e3a5b2d4c6e8f0a1b3c5d7e9f11"),
    )


@pytest.fixture(scope="session")
def make_settings(number: NumberConfig) -> Callable[..., SimulatorSettings]:
    """Quiet settings: the test number, no limits, no webhooks, seeded; override any field."""

    def make(**overrides: Any) -> SimulatorSettings:
        values: dict[str, Any] = {
            "numbers": (number,),
            "rate_limit": None,
            "webhooks": {"enabled": False},
            "seed": 1,
        }
        return SimulatorSettings(**(values | overrides))

    return make


@pytest.fixture(scope="session")
def client_for() -> Callable[[Starlette], httpx.AsyncClient]:
    """``client_for(app)``: a client calling ``app`` in-process. No lifespan runs, so nothing
    happens in the background unless the test enters ``app.state.simulator.running()``."""
    return lambda app: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[FakeGateway, str]]:
    """A fake gateway on a free port, and its base URL."""
    fake = FakeGateway()
    async with serve(fake.app()) as url:
        yield fake, url
