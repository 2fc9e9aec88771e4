"""Channel secrets sealed at rest (AES-256-GCM, key rotation, row binding)."""

import base64

import pytest
from pydantic import SecretStr

from zapflow.gateway.crypto import SecretBox, channel_aad, new_key, parse_key
from zapflow.gateway.errors import SecretsError
from zapflow.gateway.settings import DEV_SECRETS_KEY, Settings

AAD = channel_aad("acme", "acme-meta")


def test_sealed_values_open_again_and_hide_the_plaintext() -> None:
    box = SecretBox.from_setting(new_key())
    sealed = box.seal_mapping({"app_secret": "s3cr3t-value"}, AAD)
    assert b"s3cr3t-value" not in sealed
    assert box.open_mapping(sealed, AAD) == {"app_secret": "s3cr3t-value"}


def test_sealing_twice_gives_different_ciphertexts() -> None:
    box = SecretBox.from_setting(new_key())
    assert box.seal(b"x", AAD) != box.seal(b"x", AAD)


def test_a_value_moved_to_another_channel_does_not_open() -> None:
    box = SecretBox.from_setting(new_key())
    sealed = box.seal(b"secret", AAD)
    with pytest.raises(SecretsError, match="does not open"):
        box.open(sealed, channel_aad("other", "acme-meta"))


def test_a_tampered_value_does_not_open() -> None:
    box = SecretBox.from_setting(new_key())
    sealed = bytearray(box.seal(b"secret", AAD))
    sealed[-1] ^= 1
    with pytest.raises(SecretsError):
        box.open(bytes(sealed), AAD)


def test_rotation_the_first_key_seals_and_every_key_opens() -> None:
    old, new = new_key(), new_key()
    sealed_by_old = SecretBox.from_setting(old).seal(b"v", AAD)
    rotated = SecretBox.from_setting(f"{new},{old}")
    assert rotated.open(sealed_by_old, AAD) == b"v"
    sealed_by_new = rotated.seal(b"w", AAD)
    assert SecretBox.from_setting(new).open(sealed_by_new, AAD) == b"w"
    with pytest.raises(SecretsError, match="not configured"):
        SecretBox.from_setting(old).open(sealed_by_new, AAD)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02" + bytes(40)])
def test_garbage_is_refused_with_a_secrets_error(blob: bytes) -> None:
    with pytest.raises(SecretsError):
        SecretBox.from_setting(new_key()).open(blob, AAD)


def test_keys_must_be_32_bytes_of_base64url() -> None:
    assert len(parse_key(new_key())) == 32
    with pytest.raises(ValueError, match="32 bytes"):
        parse_key(base64.urlsafe_b64encode(b"short").decode())
    with pytest.raises(ValueError, match="base64url"):
        parse_key("not base64 !!!")
    with pytest.raises(ValueError, match="at least one"):
        SecretBox.from_setting(" , ")


def test_the_default_is_the_documented_development_key() -> None:
    settings = Settings()
    assert settings.secrets_key.get_secret_value() == DEV_SECRETS_KEY
    assert settings.uses_dev_secrets_key
    SecretBox.from_setting(DEV_SECRETS_KEY)  # valid
    assert not Settings(secrets_key=SecretStr(new_key())).uses_dev_secrets_key
