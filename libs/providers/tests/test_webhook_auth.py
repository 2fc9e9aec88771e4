"""verify_webhook for every provider: native mechanisms, path tokens, fail-closed defaults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from zapflow.providers.base import ChannelSecrets
from zapflow.providers.errors import WebhookAuthError, WebhookError
from zapflow.providers.evolution import EvolutionAdapter
from zapflow.providers.meta import MetaAdapter, verify_handshake
from zapflow.providers.registry import PROVIDERS, get_adapter
from zapflow.providers.wuzapi import WuzapiAdapter
from zapflow.providers.zapi import ZapiAdapter

NOW = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)
BODY = b'{"event":"messages.upsert","data":{},"apikey":"inst-token"}'
JWT_KEY = "evo-jwt-secret"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], *, key: str = JWT_KEY, alg: str = "HS256") -> str:
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(signature)}"


def sign(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


EVOLUTION = EvolutionAdapter(clock=lambda: NOW)
VALID_CLAIMS = {
    "app": "evolution",
    "action": "webhook",
    "iat": NOW.timestamp() - 5,
    "exp": NOW.timestamp() + 600,
}


def test_meta_signature_is_over_raw_bytes() -> None:
    secrets = ChannelSecrets(app_secret="s3cret")
    header = {"x-hub-signature-256": "sha256=" + sign("s3cret", BODY)}
    MetaAdapter().verify_webhook(header, BODY, {}, secrets)
    MetaAdapter().verify_webhook(
        {"X-Hub-Signature-256": header["x-hub-signature-256"]}, BODY, {}, secrets
    )
    reserialized = json.dumps(json.loads(BODY)).encode()
    for headers, body in [
        (header, reserialized),
        ({}, BODY),
        ({"x-hub-signature-256": sign("s3cret", BODY)}, BODY),  # missing sha256= prefix
        ({"x-hub-signature-256": "sha256=" + sign("other", BODY)}, BODY),
    ]:
        with pytest.raises(WebhookAuthError):
            MetaAdapter().verify_webhook(headers, body, {}, secrets)


def test_meta_handshake() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "42"}
    assert verify_handshake(query, "tok") == "42"
    for bad_query, token in [
        ({**query, "hub.mode": "unsubscribe"}, "tok"),
        ({k: v for k, v in query.items() if k != "hub.challenge"}, "tok"),
        (query, None),
    ]:
        with pytest.raises(WebhookAuthError):
            verify_handshake(bad_query, token)


def test_evolution_apikey_header_or_envelope_field() -> None:
    secrets = ChannelSecrets(api_key="inst-token")
    EVOLUTION.verify_webhook({"apikey": "inst-token"}, b"{}", {}, secrets)
    EVOLUTION.verify_webhook({}, BODY, {}, secrets)  # envelope "apikey" field
    with pytest.raises(WebhookAuthError):
        EVOLUTION.verify_webhook({"apikey": "nope"}, b"{}", {}, secrets)


def test_evolution_jwt() -> None:
    secrets = ChannelSecrets(jwt_key=JWT_KEY)
    EVOLUTION.verify_webhook(
        {"authorization": "Bearer " + make_jwt(VALID_CLAIMS)}, b"{}", {}, secrets
    )
    bad_tokens = [
        make_jwt({**VALID_CLAIMS, "exp": NOW.timestamp() - 120}),  # expired
        make_jwt({k: v for k, v in VALID_CLAIMS.items() if k != "exp"}),  # no exp
        make_jwt(VALID_CLAIMS, key="wrong-key"),
        make_jwt(VALID_CLAIMS, alg="none"),
        make_jwt({**VALID_CLAIMS, "nbf": NOW.timestamp() + 3600}),
        make_jwt({**VALID_CLAIMS, "exp": "tomorrow"}),
        "a.b",
        "!!.??.**",
    ]
    for token in bad_tokens:
        with pytest.raises(WebhookAuthError):
            EVOLUTION.verify_webhook({"authorization": f"Bearer {token}"}, b"{}", {}, secrets)
    with pytest.raises(WebhookAuthError):
        EVOLUTION.verify_webhook({"authorization": "Basic abc"}, b"{}", {}, secrets)


def test_evolution_either_mechanism_suffices() -> None:
    secrets = ChannelSecrets(api_key="inst-token", jwt_key=JWT_KEY)
    EVOLUTION.verify_webhook({"apikey": "inst-token"}, b"{}", {}, secrets)
    EVOLUTION.verify_webhook(
        {"authorization": "Bearer " + make_jwt(VALID_CLAIMS)}, b"{}", {}, secrets
    )


def test_zapi_client_token() -> None:
    secrets = ChannelSecrets(client_token="acct")
    ZapiAdapter().verify_webhook({"client-token": "acct"}, b"{}", {}, secrets)
    for headers in ({}, {"client-token": "other"}):
        with pytest.raises(WebhookAuthError):
            ZapiAdapter().verify_webhook(headers, b"{}", {}, secrets)


def test_wuzapi_hmac_without_prefix() -> None:
    secrets = ChannelSecrets(hmac_key="k" * 32)
    WuzapiAdapter().verify_webhook({"x-hmac-signature": sign("k" * 32, BODY)}, BODY, {}, secrets)
    with pytest.raises(WebhookAuthError):
        WuzapiAdapter().verify_webhook(
            {"x-hmac-signature": "sha256=" + sign("k" * 32, BODY)}, BODY, {}, secrets
        )


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_path_token_for_every_provider(name: str) -> None:
    adapter = get_adapter(name)
    secrets = ChannelSecrets(path_token="p4th-t0ken")
    adapter.verify_webhook({}, b"{}", {"token": "p4th-t0ken"}, secrets)
    adapter.verify_webhook({}, b"{}", {}, secrets, path_token="p4th-t0ken")
    for query, supplied in [
        ({}, None),
        ({"token": "wrong"}, None),
        ({"token": "p4th-t0ken"}, "wrong"),
    ]:
        with pytest.raises(WebhookAuthError):
            adapter.verify_webhook({}, b"{}", query, secrets, path_token=supplied)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_no_secret_configured_fails_closed(name: str) -> None:
    with pytest.raises(WebhookAuthError) as info:
        get_adapter(name).verify_webhook({}, b"{}", {}, ChannelSecrets())
    assert isinstance(info.value, WebhookError)
    assert "no webhook secret" in info.value.reason


def test_native_and_path_token_are_both_required() -> None:
    secrets = ChannelSecrets(app_secret="s3cret", path_token="p")
    header = {"x-hub-signature-256": "sha256=" + sign("s3cret", BODY)}
    MetaAdapter().verify_webhook(header, BODY, {"token": "p"}, secrets)
    with pytest.raises(WebhookAuthError):
        MetaAdapter().verify_webhook(header, BODY, {}, secrets)
    with pytest.raises(WebhookAuthError):
        MetaAdapter().verify_webhook({}, BODY, {"token": "p"}, secrets)


def test_secrets_never_appear_in_repr() -> None:
    assert "s3cret" not in repr(ChannelSecrets(app_secret="s3cret", path_token="s3cret"))
