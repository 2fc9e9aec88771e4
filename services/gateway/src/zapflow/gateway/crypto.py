"""Channel secrets at rest: AES-256-GCM with keys from ``ZF_GATEWAY_SECRETS_KEY``.

A sealed value is ``0x01 | key id (4 bytes) | nonce (12 bytes) | ciphertext+tag``. The key id is
the first four bytes of SHA-256 of the key, so a value names the key that sealed it and keys can
be rotated: the setting lists keys separated by commas, the first seals, every one opens. Re-seal
old rows by updating them after adding a new first key.

The associated data binds a sealed value to its row (``<tenant>/<channel>``): a value copied
into another channel's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zapflow.gateway.errors import SecretsError

VERSION: Final = b"\x01"
_KEY_ID_LEN: Final = 4
_NONCE_LEN: Final = 12
_HEADER_LEN: Final = 1 + _KEY_ID_LEN + _NONCE_LEN


def parse_key(text: str) -> bytes:
    """A 32-byte key from its base64url form (padding optional)."""
    cleaned = text.strip()
    try:
        key = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("secrets key is not base64url") from exc
    if len(key) != 32:
        raise ValueError(f"secrets key must be 32 bytes, got {len(key)}")
    return key


def new_key() -> str:
    """A fresh random key in the form ``ZF_GATEWAY_SECRETS_KEY`` takes."""
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_KEY_ID_LEN]


class SecretBox:
    """Seals and opens small secrets; the first key seals, every key opens."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one secrets key is required")
        self._sealing_id = _key_id(keys[0])
        self._ciphers = {_key_id(k): AESGCM(k) for k in keys}

    @classmethod
    def from_setting(cls, value: str) -> SecretBox:
        """From ``ZF_GATEWAY_SECRETS_KEY``: comma-separated base64url keys."""
        return cls([parse_key(part) for part in value.split(",") if part.strip()])

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        sealed = self._ciphers[self._sealing_id].encrypt(nonce, plaintext, aad)
        return VERSION + self._sealing_id + nonce + sealed

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if len(blob) <= _HEADER_LEN or blob[:1] != VERSION:
            raise SecretsError("sealed secret has an unknown format")
        cipher = self._ciphers.get(blob[1 : 1 + _KEY_ID_LEN])
        if cipher is None:
            raise SecretsError("sealed secret uses a key that is not configured")
        nonce = blob[1 + _KEY_ID_LEN : _HEADER_LEN]
        try:
            return cipher.decrypt(nonce, blob[_HEADER_LEN:], aad)
        except InvalidTag as exc:
            raise SecretsError("sealed secret does not open (tampered or moved)") from exc

    def seal_mapping(self, values: Mapping[str, str], aad: bytes) -> bytes:
        return self.seal(orjson.dumps(dict(values)), aad)

    def open_mapping(self, blob: bytes, aad: bytes) -> dict[str, str]:
        data = orjson.loads(self.open(blob, aad))
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise SecretsError("sealed secrets are not a string mapping")
        return data


def channel_aad(tenant_id: str, channel_id: str) -> bytes:
    """Associated data binding a channel's sealed secrets to its row."""
    return f"{tenant_id}/{channel_id}".encode()
