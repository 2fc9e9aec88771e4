"""Provider secrets carried in webhook bodies are removed before anything stores them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from zapflow.providers import get_adapter
from zapflow.providers.scrub import SCRUBBED, carried_secrets, scrub, scrub_webhook

Doc = Callable[[str, str], Any]
JSON = "application/json"


def test_evolution_apikey_is_replaced_and_the_rest_kept_byte_for_byte(
    fixture_path: Callable[[str, str], Any],
) -> None:
    body = fixture_path("evolution", "inbound_text.json").read_bytes()
    apikey = json.loads(body)["apikey"]
    clean = scrub_webhook(body, JSON)
    assert apikey.encode() not in clean
    assert json.loads(clean)["apikey"] == SCRUBBED
    assert clean == body.replace(json.dumps(apikey).encode(), json.dumps(SCRUBBED).encode())
    before = get_adapter("evolution").parse_webhook(body, JSON)
    after = get_adapter("evolution").parse_webhook(clean, JSON)
    assert after.messages == before.messages


def test_unusual_escapes_and_short_secrets_are_reserialized() -> None:
    escaped = b'{"event":"x","data":{},"apikey":"abc\\/defghij"}'
    clean = scrub_webhook(escaped, JSON)
    assert json.loads(clean)["apikey"] == SCRUBBED
    assert b"defghij" not in clean
    short = b'{"event":"x","data":{"n":"k1"},"apikey":"k1"}'
    clean = scrub_webhook(short, JSON)
    assert json.loads(clean) == {"event": "x", "data": {"n": "k1"}, "apikey": SCRUBBED}


def test_bodies_without_secrets_are_untouched() -> None:
    body = b'{"event":"x","data":{"token":"inner"},"apikey":null}'
    assert scrub_webhook(body, JSON) is body
    assert scrub_webhook(b"jsonData=%7B%7D&token=t", "application/x-www-form-urlencoded")
    assert scrub_webhook(b"not json", JSON) == b"not json"
    assert carried_secrets({"Token": "t", "ApiKey": SCRUBBED, "x": "y"}) == {"Token": "t"}
    assert scrub(b"[]", []) == b"[]"
