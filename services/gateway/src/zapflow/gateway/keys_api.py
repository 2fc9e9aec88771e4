"""API keys of the caller's tenant (``/v1/api-keys``), for keys with scope ``keys:admin``.

A key is issued with the scopes asked for, each of which the caller must hold itself (``admin``
holds them all), so ``keys:admin`` cannot mint a stronger key than its own. The key is in the
201 answer only, never again; lists show prefixes and scopes. Another tenant's key id is 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from zapflow.gateway import scopes, store, tenants
from zapflow.gateway.auth import Principal, requires
from zapflow.gateway.schemas import ErrorOut, Text

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid request (an unknown scope)"},
    401: {"model": ErrorOut, "description": "Missing, invalid or revoked API key"},
    403: {"model": ErrorOut, "description": "The API key lacks keys:admin or a scope it grants"},
    404: {"model": ErrorOut, "description": "No such key for this tenant"},
}

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], responses=_ERRORS)
KeysAdmin = Annotated[Principal, Depends(requires(scopes.KEYS_ADMIN))]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Text
    scopes: list[str] = Field(
        min_length=1,
        max_length=len(scopes.SCOPES),
        description="Scopes of the new key: " + ", ".join(scopes.SCOPES) + ".",
    )


class KeyOut(BaseModel):
    id: UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None

    @classmethod
    def of(cls, row: asyncpg.Record) -> KeyOut:
        return cls(
            id=row["id"],
            name=row["name"],
            prefix=row["prefix"],
            scopes=list(row["scopes"]),
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


class KeyIssued(KeyOut):
    key: str = Field(description="The key itself: shown in this answer only.")


class KeyList(BaseModel):
    items: list[KeyOut]


@router.get("", summary="List the tenant's API keys")
async def list_keys(request: Request, who: KeysAdmin) -> KeyList:
    rows = await store.list_api_keys(request.app.state.service.pool, who.tenant_id)
    return KeyList(items=[KeyOut.of(row) for row in rows])


@router.post("", status_code=201, summary="Issue an API key with chosen scopes")
async def create_key(request: Request, body: KeyCreate, who: KeysAdmin) -> KeyIssued:
    chosen = tenants.checked_scopes(body.scopes)
    beyond = [scope for scope in chosen if not who.allows(scope)]
    if beyond:
        raise HTTPException(403, f"API key cannot grant scope {beyond[0]} it lacks")
    async with request.app.state.service.pool.acquire() as conn:
        issued = await tenants.issue_api_key(conn, who.tenant_id, body.name, scopes=chosen)
        row = await store.api_key_view(conn, who.tenant_id, issued.id)
    assert row is not None
    return KeyIssued(**KeyOut.of(row).model_dump(), key=issued.key)


@router.post("/{key_id}/revoke", summary="Revoke one of the tenant's API keys")
async def revoke_key(request: Request, key_id: UUID, who: KeysAdmin) -> KeyOut:
    pool = request.app.state.service.pool
    row = await store.revoke_api_key_by_id(pool, who.tenant_id, key_id)
    if row is None:
        raise HTTPException(404, "API key not found")
    return KeyOut.of(row)
