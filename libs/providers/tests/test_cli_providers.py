"""``zapflow providers parse`` (tools/cli ``providers_cmd``) over the recorded fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

cli = pytest.importorskip("zapflow.cli.providers_cmd")
testing = pytest.importorskip("typer.testing")

FixturePath = Callable[[str, str], Path]


def run(*args: str | Path) -> Any:
    return testing.CliRunner().invoke(cli.app, ["parse", *map(str, args)])


def all_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def lines(output: str) -> list[dict[str, Any]]:
    """The event lines, without the receiving identity."""
    return [line for line in all_lines(output) if line["event"] != "receiving"]


def receiving(output: str) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in line.items() if k != "event"}
        for line in all_lines(output)
        if line["event"] == "receiving"
    ]


META_NUMBER = {"account": "109876543210987", "phone": "+5511999990000", "name": None}
EVOLUTION_INSTANCE = {"account": "loja-centro", "phone": "+5511999990000", "name": None}
ZAPI_INSTANCE = "3D9F0A1B2C3D4E5F60718293A4B5C6D7"
WUZAPI_USER = {
    "account": "4f7d2c9a1b3e5f60718293a4b5c6d7e8",
    "phone": None,
    "name": "atendimento-01",
}
WEBHOOK_FILES = {
    "meta": (
        "inbound_text",
        "inbound_image",
        "status_sent",
        "status_delivered",
        "status_read",
        "status_failed",
    ),
    "evolution": (
        "inbound_text",
        "inbound_image",
        "send_message_event",
        "status_sent",
        "status_delivered",
        "status_read",
        "status_failed",
        "contacts_upsert",
        "connection_update",
        "qrcode_updated",
    ),
    "zapi": (
        "inbound_text",
        "inbound_image",
        "status_sent",
        "status_delivered",
        "status_read",
        "status_failed",
        "delivery_callback",
        "disconnected_callback",
    ),
    "wuzapi": (
        "inbound_text",
        "inbound_image",
        "inbound_text_form",
        "status_delivered",
        "status_read",
    ),
}


def expected_identity(provider: str, name: str) -> dict[str, Any]:
    if provider == "meta":
        return META_NUMBER
    if provider == "evolution":
        return EVOLUTION_INSTANCE
    if provider == "zapi":  # only received messages carry the connected number
        phone = "+5511999990000" if name.startswith("inbound") else None
        return {"account": ZAPI_INSTANCE, "phone": phone, "name": None}
    return WUZAPI_USER


@pytest.mark.parametrize(
    ("provider", "name"), [(p, n) for p, names in WEBHOOK_FILES.items() for n in names]
)
def test_prints_the_receiving_identity_first(
    fixture_path: FixturePath, provider: str, name: str
) -> None:
    result = run(provider, fixture_path(provider, f"{name}.json"))
    assert result.exit_code == 0, result.output
    first, *_ = all_lines(result.output)
    assert first["event"] == "receiving"
    assert receiving(result.output) == [expected_identity(provider, name)]


def test_a_meta_batch_for_two_numbers_names_both(tmp_path: Path, fixture_path: FixturePath) -> None:
    doc = json.loads(fixture_path("meta", "inbound_text.json").read_text())
    other = json.loads(json.dumps(doc["entry"][0]))
    other["changes"][0]["value"]["metadata"] = {
        "display_phone_number": "5511999990009",
        "phone_number_id": "200000000000009",
    }
    doc["entry"].append(other)
    body = tmp_path / "batch.json"
    body.write_text(json.dumps(doc))
    assert receiving(run("meta", body).output) == [
        META_NUMBER,
        {"account": "200000000000009", "phone": "+5511999990009", "name": None},
    ]


def test_prints_one_json_line_per_event(fixture_path: FixturePath) -> None:
    result = run("meta", fixture_path("meta", "inbound_text.json"))
    assert result.exit_code == 0
    (line,) = lines(result.output)
    assert line["event"] == "message"
    assert (line["kind"], line["contact"]["phone"]) == ("text", "+5511999990001")
    assert line["sent_at"] == "2025-11-20T14:00:00Z"


def test_statuses_and_ignored(fixture_path: FixturePath) -> None:
    result = run("zapi", fixture_path("zapi", "status_read.json"))
    assert [(x["event"], x["status"]) for x in lines(result.output)] == [("status", "read")]
    result = run("evolution", fixture_path("evolution", "qrcode_updated.json"))
    assert lines(result.output) == [{"event": "ignored", "reason": "qrcode.updated"}]


def test_wuzapi_decoded_form_fields_are_reencoded(fixture_path: FixturePath) -> None:
    path = fixture_path("wuzapi", "inbound_text_form.json")
    for extra in ([], ["--content-type", "application/x-www-form-urlencoded"]):
        (line,) = lines(run("wuzapi", path, *extra).output)
        assert (line["event"], line["contact"]["name"]) == ("message", "Ana Souza")


def test_raw_form_body_file(tmp_path: Path, fixture_path: FixturePath) -> None:
    fields = json.loads(fixture_path("wuzapi", "signature_example.json").read_text())["form_mode"]
    body = tmp_path / "body.txt"
    body.write_text(fields["raw_body"])
    result = run("wuzapi", body, "--content-type", fields["content_type"])
    assert [x["event"] for x in lines(result.output)] == ["status"]


def test_bad_body_and_unknown_provider(fixture_path: FixturePath) -> None:
    result = run("meta", fixture_path("zapi", "inbound_text.json"))
    assert result.exit_code == 2
    assert "not a whatsapp_business_account envelope" in result.output
    assert run("telegram", fixture_path("zapi", "inbound_text.json")).exit_code == 2
