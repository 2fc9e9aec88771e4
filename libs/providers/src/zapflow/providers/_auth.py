"""Webhook authentication primitives: HMAC-SHA256 signatures and HS256 JWTs (stdlib only)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any, Final

from zapflow.providers.errors import WebhookAuthError

JWT_LEEWAY_SECONDS: Final = 30
"""Clock skew tolerated on ``exp``/``nbf``/``iat``."""


def hmac_sha256_hex(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def check_hex_signature(supplied: str | None, key: str, body: bytes, *, provider: str) -> None:
    """Compare a lowercase-hex HMAC-SHA256 of the raw body, in constant time."""
    if not supplied:
        raise WebhookAuthError("signature header missing", provider=provider)
    expected = hmac_sha256_hex(key, body)
    if not hmac.compare_digest(supplied.strip().lower().encode(), expected.encode()):
        raise WebhookAuthError("signature mismatch", provider=provider)


def _b64url(segment: str) -> bytes:
    padded = segment + "=" * (-len(segment) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _json_segment(segment: str) -> dict[str, Any]:
    decoded = json.loads(_b64url(segment))
    if not isinstance(decoded, dict):
        raise ValueError("segment is not a JSON object")
    return decoded


def _numeric_claim(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"claim {name} is not numeric")
    return float(value)


def check_hs256_jwt(token: str | None, key: str, now: datetime, *, provider: str) -> dict[str, Any]:
    """Verify an HS256 JWT's signature and ``exp`` (required), ``nbf`` and ``iat``; return claims.

    Only ``alg: HS256`` is accepted, so ``none`` and algorithm-confusion tokens are refused.
    """
    if not token:
        raise WebhookAuthError("bearer token missing", provider=provider)
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise WebhookAuthError("malformed JWT", provider=provider)
    try:
        header = _json_segment(parts[0])
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise WebhookAuthError("malformed JWT", provider=provider) from exc
    if header.get("alg") != "HS256":
        raise WebhookAuthError("JWT algorithm not HS256", provider=provider)
    signed = f"{parts[0]}.{parts[1]}".encode("ascii", errors="replace")
    expected = hmac.new(key.encode(), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise WebhookAuthError("JWT signature mismatch", provider=provider)
    try:
        claims = _json_segment(parts[1])
        exp, nbf, iat = (_numeric_claim(claims, n) for n in ("exp", "nbf", "iat"))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise WebhookAuthError("malformed JWT claims", provider=provider) from exc
    moment = now.timestamp()
    if exp is None or moment > exp + JWT_LEEWAY_SECONDS:
        raise WebhookAuthError("JWT expired or without exp", provider=provider)
    if nbf is not None and moment < nbf - JWT_LEEWAY_SECONDS:
        raise WebhookAuthError("JWT not yet valid", provider=provider)
    if iat is not None and moment < iat - JWT_LEEWAY_SECONDS:
        raise WebhookAuthError("JWT issued in the future", provider=provider)
    return claims


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None
