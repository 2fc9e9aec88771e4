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


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


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
