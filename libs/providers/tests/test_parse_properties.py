"""Property tests: parse_webhook never raises anything but WebhookPayloadError, whatever the body.

Random bytes, random JSON documents and recorded fixtures mutated at random paths (values
replaced by random or edge-case JSON, keys deleted) go through every adapter; whatever comes back
must serialize as canonical JSON.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zapflow.providers.base import ParsedWebhook
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.registry import PROVIDERS, get_adapter

Doc = Callable[[str, str], Any]
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "", "text/plain"]
SEEDS = {
    "meta": ["inbound_text.json", "inbound_image.json", "status_failed.json", "status_sent.json"],
    "evolution": [
        "inbound_text.json",
        "inbound_image.json",
        "send_message_event.json",
        "status_failed.json",
        "contacts_upsert.json",
        "connection_update.json",
    ],
    "zapi": ["inbound_text.json", "inbound_image.json", "status_read.json", "status_failed.json"],
    "wuzapi": [
        "inbound_text.json",
        "inbound_image.json",
        "status_read.json",
        "status_delivered.json",
    ],
}
EDGE_VALUES: list[Any] = [
    None, True, 0, -1, 2**63, 1e308, -1e308, 0.5, "", " ", "0", "-1", "abc", "201245678901234@lid",
    "120363025246125888@g.us", "x-group", "\x00", "9" * 400, [], {}, [None], {"low": 1, "high": -1},
    {"0": 300}, {"low": True, "high": 0}, "0001-01-01T00:00:00Z", "REVOKE", 14, "MESSAGE_EDIT",
    "2025-11-20T11:00:00.123456789-03:00", "READ_BY_ME", "ReadSelf",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def check(name: str, body: bytes, content_type: str) -> ParsedWebhook | None:
    try:
        parsed = get_adapter(name).parse_webhook(body, content_type, channel_phone=None)
    except WebhookPayloadError as exc:
        if not exc.reason:
            raise AssertionError("payload error without a reason") from exc
        return None
    for _, item in parsed.events():
        json.loads(item.model_dump_json())
    assert all(isinstance(reason, str) and len(reason) <= 80 for reason in parsed.ignored)
    return parsed


def slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) pair in a JSON tree, iteratively."""
    found: list[tuple[Any, Any]] = []
    stack = [node]
    while stack:
        current = stack.pop()
        keys = list(current) if isinstance(current, dict) else range(len(current))
        for key in keys:
            found.append((current, key))
            if isinstance(current[key], dict | list):
                stack.append(current[key])
    return found


def mutate(payload: Any, data: st.DataObject) -> Any:
    for _ in range(data.draw(st.integers(min_value=1, max_value=4), label="mutations")):
        targets = slots(payload)
        if not targets:
            break
        parent, key = data.draw(st.sampled_from(targets), label="target")
        operation = data.draw(st.sampled_from(["edge", "random", "delete"]), label="operation")
        if operation == "delete":
            del parent[key]
        elif operation == "edge":
            parent[key] = copy.deepcopy(data.draw(st.sampled_from(EDGE_VALUES), label="edge"))
        else:
            parent[key] = data.draw(json_values, label="value")
    return payload


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(PROVIDERS)),
    body=st.binary(max_size=512),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_random_bytes_never_crash(name: str, body: bytes, content_type: str) -> None:
    check(name, body, content_type)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(PROVIDERS)), value=json_values)
def test_random_json_never_crashes(name: str, value: Any) -> None:
    check(name, json.dumps(value).encode(), "application/json")


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_fixtures_never_crash(name: str, doc: Doc, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(SEEDS[name]), label="seed")
    payload = mutate(doc(name, seed), data)
    body = json.dumps(payload).encode()
    check(name, body, "application/json")
    if name == "wuzapi":
        form = {"jsonData": json.dumps(payload), "instanceName": "i", "userID": "u"}
        check(name, urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_unmutated_envelope_with_random_items_parses(
    name: str, doc: Doc, data: st.DataObject
) -> None:
    """Keeping the envelope intact, garbage inside must never raise at all."""
    payload = doc(name, SEEDS[name][0])
    item_holder = {
        "meta": lambda p: p["entry"][0]["changes"][0]["value"]["messages"],
        "evolution": lambda p: p["data"],
        "zapi": lambda p: p,
        "wuzapi": lambda p: p["event"],
    }[name](payload)
    mutate(item_holder, data)
    if name == "meta":
        payload["object"] = "whatsapp_business_account"
        payload["entry"] = payload.get("entry") if isinstance(payload.get("entry"), list) else []
    elif name in ("zapi", "wuzapi"):
        payload["type"] = payload["type"] if isinstance(payload.get("type"), str) else "Message"
    assert check(name, json.dumps(payload).encode(), "application/json") is not None
