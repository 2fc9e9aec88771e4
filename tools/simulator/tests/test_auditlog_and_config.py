"""The audit log file and ``GET /_audit``; settings from file, environment and flags."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from zapflow.simulator import create_app
from zapflow.simulator.__main__ import load_settings
from zapflow.simulator.auditlog import AuditRecord, content_hash, read_file
from zapflow.simulator.config import NumberConfig, SimulatorSettings
from zapflow.simulator.testing import bearer, meta_path

Client = Callable[[Starlette], httpx.AsyncClient]
Settings = Callable[..., SimulatorSettings]


def text(to: str, opaque: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": to,
        "type": "text",
        "text": {"body": "Olá"},
        "biz_opaque_callback_data": opaque,
    }


async def test_accepted_sends_are_appended_to_the_file_in_order(
    make_settings: Settings, client_for: Client, number: NumberConfig, tmp_path: Path
) -> None:
    path = tmp_path / "audit" / "log.jsonl"
    app = create_app(make_settings(audit={"path": path}, rate_limit={"rate": 1, "burst": 3}))
    async with app.state.simulator.running(), client_for(app) as client:
        for i in range(5):
            await client.post(
                meta_path(number), json=text(f"551199999000{i}", f"m{i}"), headers=bearer(number)
            )
        served = (await client.get("/_audit", params={"since_seq": 1})).text.splitlines()

    lines = path.read_text().splitlines()
    assert len(lines) == 3  # the rate limit refused the last two
    first = json.loads(lines[0])
    assert list(first) == [
        "ts",
        "seq",
        "provider",
        "phone_number_id",
        "channel_id",
        "to",
        "wa_id",
        "wamid",
        "type",
        "biz_opaque_callback_data",
        "content_sha256",
    ]
    assert first["ts"].endswith("Z")
    assert len(first["ts"]) == len("2025-11-20T14:01:00.880Z")
    assert first["content_sha256"] == content_hash({"type": "text", "text": {"body": "Olá"}})
    assert "Olá" not in path.read_text()
    records = read_file(path)
    assert [(r.seq, r.biz_opaque_callback_data) for r in records] == [
        (1, "m0"),
        (2, "m1"),
        (3, "m2"),
    ]
    assert [AuditRecord.from_json(line) for line in served] == records[1:]


async def test_sequence_continues_across_restarts(
    make_settings: Settings, client_for: Client, number: NumberConfig, tmp_path: Path
) -> None:
    path = tmp_path / "log.jsonl"
    for _ in range(2):
        app = create_app(make_settings(audit={"path": path}))
        async with app.state.simulator.running(), client_for(app) as client:
            await client.post(
                meta_path(number), json=text("5511999990001", "x"), headers=bearer(number)
            )

    assert [r.seq for r in read_file(path)] == [1, 2]


async def test_audit_endpoint_filters_by_channel(
    make_settings: Settings, client_for: Client, number: NumberConfig
) -> None:
    other = number.model_copy(update={"channel_id": "other", "phone_number_id": "222"})
    app = create_app(make_settings(numbers=(number, other)))
    async with client_for(app) as client:
        await client.post(
            meta_path(number), json=text("5511999990001", "a"), headers=bearer(number)
        )
        await client.post(meta_path(other), json=text("5511999990001", "b"), headers=bearer(other))
        only = (await client.get("/_audit", params={"channel_id": "other"})).text.splitlines()
        bad = await client.get("/_audit", params={"since_seq": "x"})

    assert [json.loads(line)["biz_opaque_callback_data"] for line in only] == ["b"]
    assert bad.status_code == 400


def test_settings_file_env_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text(
        "port: 9001\n"
        "latency: {fixed_ms: 10, jitter_ms: 5}\n"
        "numbers:\n"
        "  - {channel_id: c1, phone_number_id: '123', access_token: s3cr3t-t0k, app_secret: s}\n"
        "  - {channel_id: c2, provider: evolution, instance: loja, api_key: k}\n"
    )
    monkeypatch.setenv("ZF_SIMULATOR_LATENCY__FIXED_MS", "40")
    monkeypatch.setenv("ZF_SIMULATOR_PORT", "9002")

    settings = load_settings(config, port=9003, audit_log=tmp_path / "a.jsonl", host=None)

    assert settings.port == 9003  # flag > env > file
    assert (settings.latency.fixed_ms, settings.latency.jitter_ms) == (40, 5)  # merged per key
    assert settings.audit.path == tmp_path / "a.jsonl"
    c1, c2 = settings.numbers
    assert settings.webhook_url(c1) == "http://127.0.0.1:8080/webhooks/meta/c1"
    assert settings.webhook_url(c2) == "http://127.0.0.1:8080/webhooks/evolution/c2"
    assert "s3cr3t-t0k" not in settings.model_dump_json()


def test_json_settings_and_validation(tmp_path: Path) -> None:
    config = tmp_path / "sim.json"
    config.write_text(json.dumps({"numbers": [{"channel_id": "c1", "phone_number_id": "1"}]}))
    assert load_settings(config).numbers[0].channel_id == "c1"

    with pytest.raises(ValidationError, match="phone_number_id"):
        SimulatorSettings(numbers=({"channel_id": "c1"},))
    with pytest.raises(ValidationError, match="unique"):
        SimulatorSettings(
            numbers=(
                {"channel_id": "c1", "phone_number_id": "1"},
                {"channel_id": "c1", "phone_number_id": "2"},
            )
        )


def test_defaults_serve_one_demo_number() -> None:
    (demo,) = SimulatorSettings().numbers
    assert (demo.channel_id, demo.phone_number_id) == ("demo-meta", "109876543210987")
    assert SimulatorSettings().rate_limit is not None


def test_example_file_documents_the_defaults() -> None:
    example = Path(__file__).parents[1] / "examples" / "simulator.yaml"

    loaded = load_settings(example).model_copy(update={"config_file": None})

    assert loaded == SimulatorSettings()
