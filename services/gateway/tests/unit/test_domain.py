"""Per-provider rules about channel secrets, credentials and webhook URLs."""

from datetime import UTC, datetime

import pytest

from zapflow.contracts.channels.v1 import PaceSettings
from zapflow.gateway import domain
from zapflow.providers.registry import PROVIDERS


def test_every_supported_provider_has_an_adapter() -> None:
    assert set(domain.supported_providers()) <= set(PROVIDERS)


def test_meta_verifies_with_its_app_secret_and_needs_no_path_token() -> None:
    secrets = domain.webhook_secrets(
        "meta", {"app_secret": "a", "verify_token": "v", "access_token": "t"}, "tok"
    )
    assert (secrets.app_secret, secrets.verify_token, secrets.path_token) == ("a", "v", None)
    assert secrets.api_key is None


@pytest.mark.parametrize("provider", ["evolution", "zapi", "wuzapi"])
def test_providers_that_sign_nothing_require_the_path_token(provider: str) -> None:
    assert domain.webhook_secrets(provider, {}, "tok").path_token == "tok"
    url = domain.webhook_url("https://gw.example", provider, "ch-1", "tok")
    assert url == f"https://gw.example/webhooks/{provider}/ch-1?token=tok"


def test_outbound_secrets_never_double_as_webhook_secrets() -> None:
    evolution = domain.webhook_secrets("evolution", {"api_key": "global"}, "tok")
    assert evolution.api_key is None  # Evolution's global key is not what its webhooks carry
    assert domain.webhook_secrets("evolution", {"webhook_api_key": "i"}, "t").api_key == "i"
    zapi = domain.webhook_secrets("zapi", {"client_token": "c"}, "tok")
    assert zapi.client_token is None


def test_credentials_hold_outbound_secrets_and_the_account_under_the_adapter_key() -> None:
    values = {"app_secret": "a", "verify_token": "v", "access_token": "t"}
    assert domain.outbound_credentials("meta", values, "1098") == {
        "access_token": "t",
        "phone_number_id": "1098",
    }
    assert domain.outbound_credentials("wuzapi", {"token": "w", "hmac_key": "h"}, None) == {
        "token": "w"
    }


def test_unknown_and_missing_secrets_are_named() -> None:
    assert domain.unknown_secrets("meta", {"app_secret": 1, "hmac_key": 1, "x": 1}) == [
        "hmac_key",
        "x",
    ]
    assert domain.missing_secrets("meta", {"verify_token"}) == ["app_secret"]
    assert domain.missing_secrets("zapi", set()) == []


def test_channel_settings_carry_no_secret() -> None:
    now = datetime.now(UTC)
    channel = domain.Channel(
        tenant_id="acme",
        channel_id="ch",
        provider="meta",
        display_name=None,
        phone=None,
        provider_account="1",
        base_url=None,
        pace=PaceSettings(rate_per_second=1),
        policy=domain.ChannelPolicy(),
        provider_options={},
        secret_names=("access_token", "app_secret"),
        webhook_token="tok",
        enabled=True,
        disabled_reason=None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    settings = channel.settings()
    assert settings.credentials_ref == "gateway:acme/ch"
    assert "tok" not in settings.model_dump_json()
    assert channel.inbound_subject == "zf.inbound.webhook_received.v1.acme.ch"
