"""The hot path's malformed-body check agrees with the providers' parsers."""

import json
import urllib.parse
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapflow.gateway.envelope import malformed
from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.registry import get_adapter

Read = Callable[[str, str], bytes]
FORM = "application/x-www-form-urlencoded"

VALID = [
    ("meta", "inbound_text.json"),
    ("meta", "status_read.json"),
    ("evolution", "inbound_text.json"),
    ("evolution", "connection_update.json"),
    ("zapi", "inbound_text.json"),
    ("zapi", "delivery_callback.json"),
    ("wuzapi", "inbound_text.json"),
    ("wuzapi", "status_read.json"),
]


@pytest.mark.parametrize(("provider", "name"), VALID)
def test_recorded_webhooks_pass(fixture_bytes: Read, provider: str, name: str) -> None:
    assert malformed(provider, fixture_bytes(provider, name), "application/json") is None


def test_wuzapi_form_bodies_pass(fixture_bytes: Read) -> None:
    fields = json.loads(fixture_bytes("wuzapi", "inbound_text_form.json"))
    body = urllib.parse.urlencode(fields).encode()
    assert malformed("wuzapi", body, FORM) is None
    assert malformed("wuzapi", b"userID=1&instanceName=x", FORM) == "form without jsonData field"


@pytest.mark.parametrize(
    ("provider", "body", "reason"),
    [
        ("meta", b"not json", "body is not valid JSON"),
        ("meta", b"[1, 2]", "body is not a JSON object"),
        ("meta", b'{"object": "page", "entry": []}', "not a whatsapp_business_account envelope"),
        (
            "meta",
            b'{"object": "whatsapp_business_account"}',
            "not a whatsapp_business_account envelope",
        ),
        ("evolution", b'{"event": "messages.upsert"}', "not an Evolution event envelope"),
        ("zapi", b'{"type": 3}', "not a Z-API callback"),
        ("wuzapi", b'{"event": {}}', "not a WuzAPI event map"),
        ("zapi", b"\xff\xfe{", "body is not valid JSON"),
    ],
)
def test_other_bodies_are_refused_with_a_reason(provider: str, body: bytes, reason: str) -> None:
    assert malformed(provider, body, "application/json") == reason


def _parser_accepts(provider: str, body: bytes, content_type: str) -> bool:
    try:
        get_adapter(provider).parse_webhook(body, content_type)
    except WebhookPayloadError:
        return False
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
envelope_keys = st.sampled_from(["object", "entry", "event", "data", "type", "x"])
documents = st.dictionaries(
    envelope_keys, json_values | st.just("whatsapp_business_account"), max_size=4
)
bodies = st.one_of(
    documents.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


@settings(max_examples=150, deadline=None)
@given(
    provider=st.sampled_from(["meta", "evolution", "zapi", "wuzapi"]),
    body=bodies,
    content_type=st.sampled_from(["application/json", FORM, ""]),
)
def test_accepted_exactly_when_the_parser_accepts_the_envelope(
    provider: str, body: bytes, content_type: str
) -> None:
    accepted = malformed(provider, body, content_type) is None
    assert accepted == _parser_accepts(provider, body, content_type)
