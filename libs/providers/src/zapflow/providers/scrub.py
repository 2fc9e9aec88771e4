"""Provider secrets a webhook body carries, and the body with them removed.

Evolution puts the instance token in its envelope (``apikey``) when it exposes it; a webhook must
not carry it into storage (the raw event, ingest's webhook log) or logs. :func:`scrub` replaces
every such value by :data:`SCRUBBED` before anything is stored, after the signature or token
check that may need it.

Only top-level envelope fields are read (:data:`SECRET_FIELDS`, any letter case): that is where
providers put them. The body's bytes are kept as received apart from the replaced values: the
JSON string of each secret (``"<secret>"``, as every provider's JSON encoder writes it) is
replaced wherever it occurs; if the secret is still readable afterwards (written with unusual
escapes), the body is re-serialized with those fields replaced instead.
"""

from __future__ import annotations

import json
from typing import Any, Final

SECRET_FIELDS: Final = frozenset(
    {
        "apikey",
        "api_key",
        "access_token",
        "token",
        "client_token",
        "secret",
        "hmac_key",
        "jwt_key",
        "password",
    }
)
"""Envelope fields (lower-cased) whose string values are secrets."""
SCRUBBED: Final = "[scrubbed]"
MIN_REPLACED: Final = 8
"""Shorter secrets are removed by re-serializing: as bytes they could match other values."""


def carried_secrets(data: Any) -> dict[str, str]:
    """The secret fields of a decoded body's envelope, by their key as written."""
    if not isinstance(data, dict):
        return {}
    return {
        key: value
        for key, value in data.items()
        if isinstance(value, str) and value and value != SCRUBBED and key.lower() in SECRET_FIELDS
    }


def scrub(body: bytes, data: Any) -> bytes:
    """``body`` without the secrets its decoded envelope ``data`` carries."""
    secrets = carried_secrets(data)
    if not secrets:
        return body
    if any(len(value) < MIN_REPLACED for value in secrets.values()):
        return _reserialized(data, secrets)  # too short to replace as bytes without collateral
    out = body
    replacement = json.dumps(SCRUBBED).encode()
    for value in secrets.values():
        quoted = json.dumps(value, ensure_ascii=False).encode()
        out = out.replace(quoted, replacement)
        ascii_quoted = json.dumps(value).encode()
        if ascii_quoted != quoted:
            out = out.replace(ascii_quoted, replacement)
    if any(value.encode() in out for value in secrets.values()) or out == body:
        return _reserialized(data, secrets)
    return out


def _reserialized(data: dict[str, Any], secrets: dict[str, str]) -> bytes:
    clean = {**data, **dict.fromkeys(secrets, SCRUBBED)}
    return json.dumps(clean, ensure_ascii=False, separators=(",", ":")).encode()


def scrub_webhook(body: bytes, content_type: str) -> bytes:
    """:func:`scrub` for a body not decoded yet: JSON bodies only (no provider puts a secret in
    a form body); a body that is not JSON is returned as it is."""
    if content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
        return body
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return scrub(body, data)
