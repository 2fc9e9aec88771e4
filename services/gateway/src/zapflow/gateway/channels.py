"""Channel use cases: register, change, disable, enable, read, hand out credentials.

Each change runs in one transaction that writes the row and its event to the outbox
(:mod:`zapflow.gateway.outbox` publishes it), so a committed change is always announced and an
announced change was always committed. A change that changes nothing writes no event.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from pydantic import BaseModel

from zapflow.contracts.channels.v1 import ChannelDisabled, ChannelRegistered, ChannelUpdated
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.gateway import store
from zapflow.gateway.crypto import SecretBox, channel_aad
from zapflow.gateway.domain import (
    Channel,
    missing_secrets,
    new_webhook_token,
    outbound_credentials,
    supported_providers,
    unknown_secrets,
)
from zapflow.gateway.errors import InvalidRequestError, NotFoundError
from zapflow.gateway.schemas import ChannelCreate, ChannelPatch
from zapflow.gateway.store import Conn, Executor

_PATCHABLE = (
    "display_name",
    "phone",
    "provider_account",
    "base_url",
    "pace",
    "policy",
    "in_doubt",
    "provider_options",
)


def _same(new: object, old: object) -> bool:
    if isinstance(new, BaseModel) and isinstance(old, BaseModel):
        return new.model_dump() == old.model_dump()
    return new == old


def _check_secrets(provider: str, names: dict[str, object]) -> None:
    unknown = unknown_secrets(provider, names)
    if unknown:
        raise InvalidRequestError(f"secrets not used by {provider}: {', '.join(unknown)}")
    missing = missing_secrets(provider, set(names))
    if missing:
        raise InvalidRequestError(f"{provider} channels need secrets: {', '.join(missing)}")


def _seal(box: SecretBox, tenant_id: str, channel_id: str, values: dict[str, str]) -> bytes | None:
    return box.seal_mapping(values, channel_aad(tenant_id, channel_id)) if values else None


def _open(box: SecretBox, tenant_id: str, channel_id: str, sealed: bytes | None) -> dict[str, str]:
    return box.open_mapping(sealed, channel_aad(tenant_id, channel_id)) if sealed else {}


async def register(conn: Conn, box: SecretBox, tenant_id: str, req: ChannelCreate) -> Channel:
    """Store a new channel and announce it; ``ConflictError`` if the id is taken."""
    if req.provider not in supported_providers():
        raise InvalidRequestError(f"unsupported provider {req.provider!r}")
    _check_secrets(req.provider, dict(req.secrets))
    now = datetime.now(UTC)
    draft = Channel(
        tenant_id=tenant_id,
        channel_id=req.id,
        provider=req.provider,
        display_name=req.display_name,
        phone=req.phone,
        provider_account=req.provider_account,
        base_url=req.base_url,
        pace=req.pace,
        policy=req.policy,
        in_doubt=req.in_doubt,
        provider_options=dict(req.provider_options),
        secret_names=tuple(sorted(req.secrets)),
        webhook_token=new_webhook_token(),
        enabled=True,
        disabled_reason=None,
        version=1,
        created_at=now,
        updated_at=now,
    )
    async with conn.transaction():
        if not await store.tenant_exists(conn, tenant_id):
            raise NotFoundError("unknown tenant")
        sealed = _seal(box, tenant_id, req.id, dict(req.secrets))
        channel = await store.insert_channel(conn, draft, sealed)
        await store.enqueue(
            conn, ChannelRegistered(tenant_id=tenant_id, channel=channel.settings())
        )
    return channel


async def get(conn: Executor, tenant_id: str, channel_id: str) -> Channel:
    row = await store.channel_row(conn, tenant_id, channel_id)
    if row is None:
        raise NotFoundError("unknown channel")
    return store.channel_from_row(row)


async def list_for_tenant(conn: Executor, tenant_id: str) -> list[Channel]:
    return [store.channel_from_row(r) for r in await store.tenant_channel_rows(conn, tenant_id)]


async def update(
    conn: Conn, box: SecretBox, tenant_id: str, channel_id: str, patch: ChannelPatch
) -> Channel:
    """Apply the fields present in ``patch``; announce what changed (``changed`` names)."""
    async with conn.transaction():
        row = await store.channel_row(conn, tenant_id, channel_id, for_update=True)
        if row is None:
            raise NotFoundError("unknown channel")
        current = store.channel_from_row(row)
        given = patch.model_fields_set
        for required in ("pace", "policy", "in_doubt", "provider_options"):
            if required in given and getattr(patch, required) is None:
                raise InvalidRequestError(f"{required} cannot be null")
        changes: dict[str, object] = {
            name: getattr(patch, name)
            for name in _PATCHABLE
            if name in given and not _same(getattr(patch, name), getattr(current, name))
        }
        sealed = row["secrets_sealed"]
        changed = sorted(changes)
        if "secrets" in given and patch.secrets:
            values = _open(box, tenant_id, channel_id, sealed)
            merged = dict(values)
            for name, value in patch.secrets.items():
                if value is None:
                    merged.pop(name, None)
                else:
                    merged[name] = value
            _check_secrets(current.provider, dict(merged))
            if merged != values:
                sealed = _seal(box, tenant_id, channel_id, merged)
                changes["secret_names"] = tuple(sorted(merged))
                changed.append("secrets")
        if not changed:
            return current
        draft = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
        channel = await store.update_channel(conn, draft, sealed)
        await store.enqueue(
            conn,
            ChannelUpdated(tenant_id=tenant_id, channel=channel.settings(), changed=tuple(changed)),
        )
    return channel


async def set_enabled(
    conn: Conn, tenant_id: str, channel_id: str, *, enabled: bool, reason: str | None = None
) -> Channel:
    """Disable (announced as ``ChannelDisabled``) or enable (``ChannelUpdated``) a channel.

    Idempotent: a channel already in the requested state is returned unchanged, with no event.
    """
    async with conn.transaction():
        row = await store.channel_row(conn, tenant_id, channel_id, for_update=True)
        if row is None:
            raise NotFoundError("unknown channel")
        current = store.channel_from_row(row)
        if current.enabled == enabled:
            return current
        changed = dataclasses.replace(
            current, enabled=enabled, disabled_reason=None if enabled else reason
        )
        channel = await store.update_channel(conn, changed, row["secrets_sealed"])
        event: ChannelUpdated | ChannelDisabled = (
            ChannelUpdated(tenant_id=tenant_id, channel=channel.settings(), changed=("enabled",))
            if enabled
            else ChannelDisabled(tenant_id=tenant_id, channel_id=channel_id, reason=reason)
        )
        await store.enqueue(conn, event)
    return channel


async def credentials(
    conn: Executor, box: SecretBox, tenant_id: str, channel_id: str
) -> ChannelCredentialsReply:
    """The channel's outbound credentials, for services that call the provider for it."""
    row = await store.channel_row(conn, tenant_id, channel_id)
    if row is None:
        return ChannelCredentialsReply(found=False)
    values = _open(box, tenant_id, channel_id, row["secrets_sealed"])
    return ChannelCredentialsReply(
        found=True,
        provider=row["provider"],
        base_url=row["base_url"],
        provider_account=row["provider_account"],
        credentials=outbound_credentials(row["provider"], values, row["provider_account"]),
        enabled=row["enabled"],
    )
