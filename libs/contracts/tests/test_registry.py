"""The registry covers every contract once, with well-formed names, and parses payloads."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from zapflow.contracts import subjects
from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import UnknownEventType
from zapflow.contracts.registry import PRODUCERS, REGISTRY, model_for, parse_event, type_name
from zapflow.contracts.types import SERVICES

TYPE_PATTERN = re.compile(r"^zf\.(?P<context>[a-z][a-z_]*)\.(?P<event>[a-z][a-z_]*)\.(?P<v>v\d+)$")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_type_names_are_versioned_lower_snake_in_the_module_of_their_context(name: str) -> None:
    match = TYPE_PATTERN.fullmatch(name)
    assert match, name
    model = REGISTRY[name]
    assert model.__module__ == f"zapflow.contracts.{match['context']}.{match['v']}"
    assert type_name(model) == name


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_contract_has_a_one_line_summary(name: str) -> None:
    doc = REGISTRY[name].__doc__
    assert doc is not None
    assert doc.strip()
    assert doc.strip().endswith(".")


def test_model_names_are_unique() -> None:
    names = [model.__name__ for model in REGISTRY.values()]
    assert len(names) == len(set(names))


def test_every_type_has_known_producers() -> None:
    assert PRODUCERS.keys() == REGISTRY.keys()
    for name, producers in PRODUCERS.items():
        assert producers, name
        assert set(producers) <= {*SERVICES, "cli"}, name


def test_samples_cover_the_registry(samples: dict[str, Event]) -> None:
    assert samples.keys() == REGISTRY.keys()


def test_subject_constants_are_exactly_the_registered_types() -> None:
    constants = {
        value
        for name, value in vars(subjects).items()
        if name.isupper() and isinstance(value, str) and value.startswith("zf.")
    }
    assert constants == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_parse_event_round_trips_json_and_mappings(name: str, samples: dict[str, Event]) -> None:
    sample = samples[name]
    from_json = parse_event(name, sample.model_dump_json())
    from_bytes = parse_event(name, sample.model_dump_json().encode())
    from_mapping = parse_event(name, sample.model_dump(mode="json"))
    assert from_json == from_bytes == from_mapping == sample
    assert type(from_json) is REGISTRY[name]


def test_parse_event_rejects_unknown_types() -> None:
    with pytest.raises(UnknownEventType) as caught:
        parse_event("zf.nope.nothing.v1", b"{}")
    assert caught.value.type_name == "zf.nope.nothing.v1"
    with pytest.raises(KeyError):
        model_for("zf.nope.nothing.v1")


def test_parse_event_rejects_a_payload_of_another_type(samples: dict[str, Event]) -> None:
    payload = samples[subjects.CAMPAIGNS_PAUSED_V1].model_dump_json()
    with pytest.raises(ValidationError):
        parse_event(subjects.CAMPAIGNS_RESUMED_V1, payload)


def test_unknown_fields_are_ignored_tolerant_reader(samples: dict[str, Event]) -> None:
    sample = samples[subjects.CAMPAIGNS_RESUMED_V1]
    data = {**sample.model_dump(mode="json"), "added_in_a_later_minor": 1}
    assert parse_event(sample.type, data) == sample


def test_type_name_refuses_models_without_a_zf_type() -> None:
    with pytest.raises(TypeError):
        type_name(Event)
