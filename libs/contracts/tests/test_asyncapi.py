"""The AsyncAPI document covers every contract and every reference in it resolves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zapflow.contracts.asyncapi import build_document, channel_id, main
from zapflow.contracts.registry import PRODUCERS, REGISTRY
from zapflow.contracts.routing import consumers_for
from zapflow.contracts.subjects import subject_params

KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document()


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert part in node, ref
        node = node[part]
    return node


def test_header_and_servers(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"]
    assert document["info"]["version"]
    assert document["servers"]["local"]["protocol"] == "nats"
    json.dumps(document)  # plain JSON data


def test_every_registered_type_has_a_channel_and_a_message(document: dict[str, Any]) -> None:
    assert {c["title"] for c in document["channels"].values()} == set(REGISTRY)
    assert {m["name"] for m in document["components"]["messages"].values()} == set(REGISTRY)
    for key in (*document["channels"], *document["operations"]):
        assert KEY.fullmatch(key), key


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = list(_refs(document))
    assert refs
    for ref in refs:
        _resolve(document, ref)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_channel_address_and_parameters(name: str, document: dict[str, Any]) -> None:
    channel = document["channels"][channel_id(name)]
    params = subject_params(REGISTRY[name])
    assert channel["address"] == ".".join((name, *(f"{{{p}}}" for p in params)))
    assert list(channel["parameters"]) == list(params)
    assert re.findall(r"\{(\w+)\}", channel["address"]) == list(params)
    for ref in _refs(channel["messages"]):
        message = _resolve(document, ref)
        assert isinstance(message, dict)
        assert message["name"] == name
        assert _resolve(document, message["payload"]["$ref"]) is not None


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_operations_follow_producers_and_consumers(name: str, document: dict[str, Any]) -> None:
    key = channel_id(name)
    ops = {
        op_id: op
        for op_id, op in document["operations"].items()
        if op["channel"]["$ref"] == f"#/channels/{key}"
    }
    by_action: dict[str, set[str]] = {"send": set(), "receive": set()}
    for op_id, op in ops.items():
        by_action[op["action"]].add(op_id.split("__")[0])
    assert by_action["send"] == set(PRODUCERS[name])
    assert by_action["receive"] == {c.owner for c in consumers_for(name)}
    for op in ops.values():
        channel = _resolve(document, op["channel"]["$ref"])
        assert isinstance(channel, dict)
        for message in op["messages"]:
            assert message["$ref"].startswith(f"#/channels/{key}/messages/")
            _resolve(document, message["$ref"])


def test_main_writes_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "asyncapi.json"
    assert main([str(target), "--check"]) == 1
    assert main([str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == build_document()
    assert main([str(target), "--check"]) == 0
