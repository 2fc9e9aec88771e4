"""Admin REST API: a tenant's channels (``/v1/channels``), authenticated by API key.

Another tenant's channel answers 404, exactly like a channel that does not exist. Secrets are
write-only. Every change is announced through the outbox (``ChannelRegistered``,
``ChannelUpdated``, ``ChannelDisabled``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from zapflow.gateway import channels, scopes
from zapflow.gateway.auth import Principal, requires
from zapflow.gateway.crypto import SecretBox
from zapflow.gateway.domain import Channel
from zapflow.gateway.schemas import (
    ChannelCreate,
    ChannelList,
    ChannelOut,
    ChannelPatch,
    DisableRequest,
    ErrorOut,
)
from zapflow.gateway.settings import Settings

READ = scopes.CHANNELS_READ
WRITE = scopes.CHANNELS_WRITE

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Invalid request"},
    401: {"model": ErrorOut, "description": "Missing, invalid or revoked API key"},
    403: {"model": ErrorOut, "description": "The API key lacks the route's scope"},
    404: {"model": ErrorOut, "description": "No such channel for this tenant"},
}

router = APIRouter(prefix="/v1/channels", tags=["channels"], responses=_ERRORS)

Reader = Annotated[Principal, Depends(requires(READ))]
Writer = Annotated[Principal, Depends(requires(WRITE))]


def _box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.gateway.box
    return box


def _out(request: Request, channel: Channel) -> ChannelOut:
    settings: Settings = request.app.state.gateway.settings
    return ChannelOut.of(channel, settings.webhook_base_url)


@router.post(
    "",
    status_code=201,
    summary="Register a channel",
    responses={409: {"model": ErrorOut, "description": "Channel id already taken"}},
)
async def create_channel(request: Request, body: ChannelCreate, who: Writer) -> ChannelOut:
    async with request.app.state.service.pool.acquire() as conn:
        channel = await channels.register(conn, _box(request), who.tenant_id, body)
    return _out(request, channel)


@router.get("", summary="List the tenant's channels")
async def list_channels(request: Request, who: Reader) -> ChannelList:
    pool = request.app.state.service.pool
    found = await channels.list_for_tenant(pool, who.tenant_id)
    return ChannelList(items=[_out(request, c) for c in found])


@router.get("/{channel_id}", summary="Read a channel")
async def get_channel(request: Request, channel_id: str, who: Reader) -> ChannelOut:
    channel = await channels.get(request.app.state.service.pool, who.tenant_id, channel_id)
    return _out(request, channel)


@router.patch("/{channel_id}", summary="Change a channel's settings or secrets")
async def update_channel(
    request: Request, channel_id: str, body: ChannelPatch, who: Writer
) -> ChannelOut:
    async with request.app.state.service.pool.acquire() as conn:
        channel = await channels.update(conn, _box(request), who.tenant_id, channel_id, body)
    return _out(request, channel)


@router.post("/{channel_id}/disable", summary="Stop a channel: webhooks 404, sends vetoed")
async def disable_channel(
    request: Request, channel_id: str, who: Writer, body: DisableRequest | None = None
) -> ChannelOut:
    reason = body.reason if body is not None else None
    async with request.app.state.service.pool.acquire() as conn:
        channel = await channels.set_enabled(
            conn, who.tenant_id, channel_id, enabled=False, reason=reason
        )
    return _out(request, channel)


@router.post("/{channel_id}/enable", summary="Re-enable a disabled channel")
async def enable_channel(request: Request, channel_id: str, who: Writer) -> ChannelOut:
    async with request.app.state.service.pool.acquire() as conn:
        channel = await channels.set_enabled(conn, who.tenant_id, channel_id, enabled=True)
    return _out(request, channel)
