"""Keyword matching, consent precedence and tenant rule validation."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from zapflow.compliance import domain
from zapflow.compliance.domain import (
    ConsentRecord,
    TenantRules,
    effective_consent,
    match_keyword,
    normalize,
)
from zapflow.contracts.compliance.v1 import ConsentState
from zapflow.contracts.consent.v1 import ConsentSource

OUT, IN = ConsentState.OPTED_OUT, ConsentState.OPTED_IN


@pytest.mark.parametrize(
    ("text", "state", "keyword"),
    [
        ("STOP", OUT, "STOP"),
        ("  stop  ", OUT, "STOP"),
        ("Sair!", OUT, "SAIR"),
        ("SAÍR", OUT, "SAIR"),
        ("Não   quero.", OUT, "NAO QUERO"),
        ("descadastrar", OUT, "DESCADASTRAR"),
        ("Cancelar", OUT, "CANCELAR"),
        ("unsubscribe", OUT, "UNSUBSCRIBE"),
        ("voltar", IN, "VOLTAR"),
        ("Start", IN, "START"),
    ],
)
def test_a_whole_message_keyword_matches_whatever_its_case_and_accents(
    text: str, state: ConsentState, keyword: str
) -> None:
    match = match_keyword(text, TenantRules())
    assert match is not None
    assert (match.state, match.keyword) == (state, keyword)


@pytest.mark.parametrize("text", [None, "", "   ", "please stop", "stop it", "sair daqui", "?!"])
def test_keywords_inside_a_sentence_do_not_match(text: str | None) -> None:
    assert match_keyword(text, TenantRules()) is None


def test_tenants_configure_their_own_keywords() -> None:
    rules = TenantRules(opt_out_keywords=("Chega",), opt_in_keywords=("Quero de novo",))
    assert match_keyword("STOP", rules) is None
    out = match_keyword("chega", rules)
    assert out is not None
    assert out.state is OUT
    back = match_keyword("quero de novo!", rules)
    assert back is not None
    assert back.state is IN


def test_normalize_folds_case_accents_spaces_and_edge_punctuation() -> None:
    assert normalize("  ÁÉÎõü  Ç! ") == "aeiou c"


def record(channel: str | None, state: ConsentState, minutes: int) -> ConsentRecord:
    at = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return ConsentRecord(channel, state, at, ConsentSource.API)


def test_the_latest_of_tenant_wide_and_channel_consent_wins() -> None:
    everywhere_out, then_a_in = record(None, OUT, 1), record("a", IN, 2)
    found = effective_consent([everywhere_out, then_a_in], "a")
    assert found is not None
    assert found.state is IN
    other = effective_consent([everywhere_out, then_a_in], "b")
    assert other is not None
    assert other.state is OUT
    again_out = effective_consent([then_a_in, record(None, OUT, 3)], "a")
    assert again_out is not None
    assert again_out.state is OUT
    assert effective_consent([record("b", OUT, 1)], "a") is None


@pytest.mark.parametrize(
    "bad",
    [
        {"timezone": "Mars/Base"},
        {"quiet_hours_start": "22:00"},
        {"opt_out_keywords": [" "]},
        {"warmup_schedule": [10, 0]},
        {"template_params": {"promo": -1}},
        {"duplicate_interval_s": 8 * 86_400},
        {"text_max_chars": 5000},
        {"unknown_rule": True},
    ],
)
def test_invalid_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TenantRules.model_validate(bad)


def test_rules_round_trip_through_json() -> None:
    rules = TenantRules(
        quiet_hours_start=time(21), quiet_hours_end=time(8), warmup_schedule=(50, 100)
    )
    assert TenantRules.model_validate_json(rules.model_dump_json()) == rules


def test_the_domain_imports_no_io_or_framework() -> None:
    banned = {"nats", "asyncpg", "httpx", "starlette", "asyncio", "zapflow.runtime"}
    for path in Path(domain.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"
                assert not name.startswith("zapflow.runtime"), f"{path.name} imports {name}"


def test_stored_rules_with_fields_no_longer_known_still_load() -> None:
    stored = '{"duplicate_interval_s": 60, "retired_rule": true}'
    assert TenantRules.load(stored) == TenantRules(duplicate_interval_s=60)
