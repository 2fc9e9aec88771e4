"""API-key authentication of the REST API: every request acts for exactly one tenant.

Routers depend on :func:`requires` with the route's scope (:mod:`zapflow.gateway.scopes`)::

    @router.get("/v1/things")
    async def things(who: Annotated[Principal, Depends(requires(scopes.THINGS_READ))]) -> ...:
        ...  # who.tenant_id scopes every query

A key is sent as ``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``. Answers:

* 401 ``{"error": <reason>}`` with ``WWW-Authenticate: Bearer`` for a missing, unknown or
  revoked key, and for the public development key (``zf_demo_local_key``) unless
  ``ZF_ENV=development`` — even when the key is in the database;
* 429 with ``Retry-After`` once the client address or the key's prefix has failed too often
  (:mod:`zapflow.gateway.authlimit`; keys that worked recently are still checked);
* 403 ``API key lacks scope <scope>`` for a valid key without the route's scope.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from zapflow.contracts.common import Actor, ActorKind
from zapflow.gateway import store
from zapflow.gateway.authlimit import FailedAuthLimiter, client_group
from zapflow.gateway.tenants import ADMIN_SCOPE, DEMO_API_KEY, hash_key, key_prefix

API_KEY_HEADER = "x-api-key"
DEV_KEY_REFUSED = "development API key refused outside development"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant an API key belongs to, the key's id and its scopes."""

    tenant_id: str
    key_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN_SCOPE in self.scopes

    @property
    def actor(self) -> Actor:
        """Who to name in the commands this caller causes: its API key."""
        return Actor(kind=ActorKind.API_KEY, id=self.key_id)


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status_code=401, detail=reason, headers={"WWW-Authenticate": "Bearer"})


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer`` or ``X-Api-Key`` (the former wins)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get(API_KEY_HEADER)
    return key.strip() if key and key.strip() else None


async def current_tenant(request: Request) -> Principal:
    """The caller's :class:`Principal`, or 401 / 429 (see the module)."""
    key = presented_key(request.headers)
    if key is None:
        raise _unauthorized("missing API key")
    gateway = request.app.state.gateway
    limiter: FailedAuthLimiter = gateway.auth_limiter
    address = client_group(request.client.host if request.client else None)
    prefix, digest = key_prefix(key), hash_key(key)
    wait = limiter.retry_after(address, prefix, digest)
    if wait > 0.0:
        raise HTTPException(
            429,
            "too many failed authentications",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    if key == DEMO_API_KEY and not gateway.settings.development:
        limiter.failed(address, prefix, digest)
        raise _unauthorized(DEV_KEY_REFUSED)
    row = await store.api_key_by_hash(request.app.state.service.pool, digest)
    if row is None or row["revoked_at"] is not None:
        limiter.failed(address, prefix, digest)
        raise _unauthorized("invalid API key" if row is None else "revoked API key")
    limiter.succeeded(digest)
    return Principal(
        tenant_id=row["tenant_id"], key_id=str(row["id"]), scopes=frozenset(row["scopes"])
    )


@functools.cache
def requires(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """FastAPI dependency: :func:`current_tenant`, then 403 unless ``scope`` is held. One
    dependency per scope (cached) carrying ``.scope``; tests override :func:`current_tenant`
    with a principal and the scope is still checked."""

    async def dependency(principal: Annotated[Principal, Depends(current_tenant)]) -> Principal:
        if not principal.allows(scope):
            raise HTTPException(status_code=403, detail=f"API key lacks scope {scope}")
        return principal

    dependency.scope = scope  # type: ignore[attr-defined]
    return dependency
