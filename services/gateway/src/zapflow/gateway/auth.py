"""API-key authentication of the REST API: every request acts for exactly one tenant.

Routers depend on :func:`current_tenant` (or :func:`requires` for a scope)::

    @router.get("/v1/things")
    async def things(principal: Annotated[Principal, Depends(current_tenant)]) -> ...:
        ...  # principal.tenant_id scopes every query

A key is sent as ``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``. Missing, unknown and
revoked keys answer 401 with ``{"error": <reason>}`` and ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fastapi import HTTPException, Request

from zapflow.contracts.common import Actor, ActorKind
from zapflow.gateway import store
from zapflow.gateway.tenants import ADMIN_SCOPE, hash_key

API_KEY_HEADER = "x-api-key"


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
    """FastAPI dependency: the caller's :class:`Principal`, or 401."""
    key = presented_key(request.headers)
    if key is None:
        raise _unauthorized("missing API key")
    pool = request.app.state.service.pool
    row = await store.api_key_by_hash(pool, hash_key(key))
    if row is None:
        raise _unauthorized("invalid API key")
    if row["revoked_at"] is not None:
        raise _unauthorized("revoked API key")
    return Principal(
        tenant_id=row["tenant_id"], key_id=str(row["id"]), scopes=frozenset(row["scopes"])
    )


def requires(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency factory: :func:`current_tenant`, then 403 unless ``scope`` is held."""

    async def dependency(request: Request) -> Principal:
        principal = await current_tenant(request)
        if not principal.allows(scope):
            raise HTTPException(status_code=403, detail=f"API key lacks scope {scope}")
        return principal

    return dependency
