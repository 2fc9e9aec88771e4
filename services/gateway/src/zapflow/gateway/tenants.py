"""Tenant and API-key use cases (bootstrap through ``zapflow-gateway-admin``).

An API key is ``zf_<8 hex>_<32 url-safe chars>``; only its SHA-256 is stored, with the first 11
characters (``zf_<8 hex>``) as the prefix humans use to tell keys apart. The key itself is
shown once, when issued.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from uuid import UUID, uuid4

from zapflow.contracts.types import SUBJECT_TOKEN_PATTERN, SYSTEM_TENANT_ID
from zapflow.gateway import scopes as scopes_
from zapflow.gateway import store
from zapflow.gateway.errors import ConflictError, InvalidRequestError, NotFoundError
from zapflow.gateway.store import Conn

ADMIN_SCOPE: Final = scopes_.ADMIN
"""Every scope (:mod:`zapflow.gateway.scopes`)."""
DEMO_API_KEY: Final = "zf_demo_local_key"
"""The public development key of the demo tenant: accepted only when ``ZF_ENV=development``."""

_TENANT_ID = re.compile(SUBJECT_TOKEN_PATTERN)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str:
    return key[:11]


def new_api_key() -> str:
    return f"zf_{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued: ``key`` is shown once and never stored."""

    id: UUID
    tenant_id: str
    prefix: str
    key: str
    created: bool = True
    scopes: tuple[str, ...] = (ADMIN_SCOPE,)


def checked_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """``scopes`` without duplicates, in order; ``InvalidRequestError`` for an unknown one or
    none at all."""
    chosen = tuple(dict.fromkeys(s.strip() for s in scopes))
    unknown = scopes_.unknown_scopes(chosen)
    if unknown:
        known = ", ".join(scopes_.SCOPES)
        raise InvalidRequestError(f"unknown scope {unknown[0]!r}; scopes: {known}")
    if not chosen:
        raise InvalidRequestError("a key needs at least one scope")
    return chosen


async def create_tenant(conn: Conn, tenant_id: str, name: str) -> bool:
    """True if created, False if it already existed."""
    if not _TENANT_ID.fullmatch(tenant_id) or tenant_id == SYSTEM_TENANT_ID:
        raise InvalidRequestError(
            "tenant id must be lowercase letters, digits, '-' or '_' (max 64), not reserved"
        )
    if not name.strip():
        raise InvalidRequestError("tenant name must not be empty")
    return await store.insert_tenant(conn, tenant_id, name.strip())


async def issue_api_key(
    conn: Conn,
    tenant_id: str,
    name: str = "api key",
    *,
    scopes: Iterable[str] = (ADMIN_SCOPE,),
    key: str | None = None,
) -> IssuedKey:
    """A new key for the tenant with ``scopes`` (or ``key`` itself, for fixed development
    keys)."""
    chosen = checked_scopes(scopes)
    if not await store.tenant_exists(conn, tenant_id):
        raise NotFoundError("unknown tenant")
    key = key or new_api_key()
    key_id = uuid4()
    created = await store.insert_api_key(
        conn,
        key_id=key_id,
        tenant_id=tenant_id,
        name=name,
        prefix=key_prefix(key),
        key_hash=hash_key(key),
        scopes=chosen,
    )
    if not created:
        existing = await store.api_key_by_hash(conn, hash_key(key))
        if existing is None or existing["tenant_id"] != tenant_id:
            raise ConflictError("this key belongs to another tenant")
        key_id = existing["id"]
        chosen = tuple(existing["scopes"])
    return IssuedKey(key_id, tenant_id, key_prefix(key), key, created, chosen)
