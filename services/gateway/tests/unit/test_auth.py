"""API keys: how they are presented, their format, what is stored."""

import pytest

from zapflow.gateway.auth import Principal, presented_key
from zapflow.gateway.tenants import ADMIN_SCOPE, hash_key, key_prefix, new_api_key


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer zf_abc"}, "zf_abc"),
        ({"authorization": "bearer   zf_abc  "}, "zf_abc"),
        ({"x-api-key": " zf_abc "}, "zf_abc"),
        ({"authorization": "Bearer zf_a", "x-api-key": "zf_b"}, "zf_a"),
        ({"authorization": "Basic dXNlcjpwdw==", "x-api-key": "zf_b"}, "zf_b"),
        ({"authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_keys_come_from_bearer_or_x_api_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(headers) == key


def test_new_keys_are_random_and_only_a_hash_and_prefix_are_kept() -> None:
    key = new_api_key()
    assert key.startswith("zf_")
    assert len(key) > 40
    assert key != new_api_key()
    assert key_prefix(key) == key[:11]
    assert hash_key(key) == hash_key(key)
    assert len(hash_key(key)) == 32


def test_admin_scope_allows_everything() -> None:
    admin = Principal("acme", "k", frozenset({ADMIN_SCOPE}))
    reader = Principal("acme", "k", frozenset({"channels:read"}))
    assert admin.allows("channels:write")
    assert reader.allows("channels:read")
    assert not reader.allows("channels:write")
