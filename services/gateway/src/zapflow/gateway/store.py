"""PostgreSQL adapter: every SQL statement of the gateway, over an asyncpg connection.

Connections resolve unqualified names in the ``gateway`` schema (the runtime's pool sets the
search path). JSON columns are passed as text and decoded with orjson.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

import asyncpg
import orjson

from zapflow.contracts.channels.v1 import ChannelPolicy, InDoubtSettings, PaceSettings
from zapflow.contracts.envelope import Event
from zapflow.contracts.subjects import subject_for
from zapflow.gateway.domain import Channel
from zapflow.gateway.errors import ConflictError
from zapflow.runtime.broker import publish_headers

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    """A connection (transactions possible)."""
    Executor: TypeAlias = Conn | asyncpg.Pool[asyncpg.Record]
    """A connection or a pool (one statement, its own transaction)."""
else:
    Conn = Executor = Any

SCHEMA = "gateway"

_CHANNEL_COLUMNS = (
    "tenant_id, id, provider, display_name, phone, provider_account, base_url, pace, policy,"
    " provider_options, secret_names, webhook_token, enabled, disabled_reason, version,"
    " created_at, updated_at, in_doubt"
)


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


# -- tenants and API keys ----------------------------------------------------------------------


async def insert_tenant(conn: Executor, tenant_id: str, name: str) -> bool:
    """True if created, False if a tenant with this id already exists."""
    status = await conn.execute(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        tenant_id,
        name,
    )
    return status == "INSERT 0 1"


async def tenant_exists(conn: Executor, tenant_id: str) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant_id)
    )


async def insert_api_key(
    conn: Executor,
    *,
    key_id: UUID,
    tenant_id: str,
    name: str,
    prefix: str,
    key_hash: bytes,
    scopes: Sequence[str],
) -> bool:
    """True if stored, False if a key with this hash already exists."""
    status = await conn.execute(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_hash) DO NOTHING",
        key_id,
        tenant_id,
        name,
        prefix,
        key_hash,
        list(scopes),
    )
    return status == "INSERT 0 1"


async def api_key_by_hash(conn: Executor, key_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, tenant_id, scopes, revoked_at FROM api_keys WHERE key_hash = $1", key_hash
    )


_KEY_COLUMNS = "id, name, prefix, scopes, created_at, revoked_at"


async def list_api_keys(conn: Executor, tenant_id: str) -> list[asyncpg.Record]:
    """The tenant's keys (never their hashes), oldest first."""
    return list(
        await conn.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id",
            tenant_id,
        )
    )


async def api_key_view(conn: Executor, tenant_id: str, key_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE tenant_id = $1 AND id = $2", tenant_id, key_id
    )


async def revoke_api_key_by_id(
    conn: Executor, tenant_id: str, key_id: UUID
) -> asyncpg.Record | None:
    """Revoke one of the tenant's keys (idempotent); None if the tenant has no such key."""
    return await conn.fetchrow(
        f"UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
        f" WHERE tenant_id = $1 AND id = $2 RETURNING {_KEY_COLUMNS}",
        tenant_id,
        key_id,
    )


async def revoke_api_key(conn: Executor, tenant_id: str, prefix: str) -> int:
    """Revoke the tenant's unrevoked keys starting with ``prefix``; returns how many."""
    status = await conn.execute(
        "UPDATE api_keys SET revoked_at = now()"
        " WHERE tenant_id = $1 AND prefix = $2 AND revoked_at IS NULL",
        tenant_id,
        prefix,
    )
    return int(status.rsplit(" ", 1)[-1])


# -- channels ----------------------------------------------------------------------------------


def channel_from_row(row: asyncpg.Record) -> Channel:
    return Channel(
        tenant_id=row["tenant_id"],
        channel_id=row["id"],
        provider=row["provider"],
        display_name=row["display_name"],
        phone=row["phone"],
        provider_account=row["provider_account"],
        base_url=row["base_url"],
        pace=PaceSettings.model_validate_json(row["pace"]),
        policy=ChannelPolicy.model_validate_json(row["policy"]),
        in_doubt=InDoubtSettings.model_validate_json(row["in_doubt"]),
        provider_options=orjson.loads(row["provider_options"]),
        secret_names=tuple(row["secret_names"]),
        webhook_token=row["webhook_token"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def insert_channel(conn: Executor, channel: Channel, sealed: bytes | None) -> Channel:
    """Store a new channel; :class:`ConflictError` if its id is taken (by any tenant)."""
    try:
        row = await conn.fetchrow(
            "INSERT INTO channels (tenant_id, id, provider, display_name, phone,"
            " provider_account, base_url, pace, policy, provider_options, secrets_sealed,"
            " secret_names, webhook_token, enabled, in_doubt)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10::jsonb, $11, $12,"
            f" $13, $14, $15::jsonb) RETURNING {_CHANNEL_COLUMNS}",
            channel.tenant_id,
            channel.channel_id,
            channel.provider,
            channel.display_name,
            channel.phone,
            channel.provider_account,
            channel.base_url,
            channel.pace.model_dump_json(),
            channel.policy.model_dump_json(),
            _json(channel.provider_options),
            sealed,
            list(channel.secret_names),
            channel.webhook_token,
            channel.enabled,
            channel.in_doubt.model_dump_json(exclude_none=True),
        )
    except asyncpg.UniqueViolationError as exc:
        raise ConflictError("channel id already taken") from exc
    assert row is not None
    return channel_from_row(row)


async def update_channel(conn: Executor, channel: Channel, sealed: bytes | None) -> Channel:
    """Write every mutable column of ``channel``, bump its version; returns the stored row."""
    row = await conn.fetchrow(
        "UPDATE channels SET display_name = $3, phone = $4, provider_account = $5,"
        " base_url = $6, pace = $7::jsonb, policy = $8::jsonb, provider_options = $9::jsonb,"
        " secrets_sealed = $10, secret_names = $11, enabled = $12, disabled_reason = $13,"
        " in_doubt = $14::jsonb, version = version + 1, updated_at = now()"
        f" WHERE tenant_id = $1 AND id = $2 RETURNING {_CHANNEL_COLUMNS}",
        channel.tenant_id,
        channel.channel_id,
        channel.display_name,
        channel.phone,
        channel.provider_account,
        channel.base_url,
        channel.pace.model_dump_json(),
        channel.policy.model_dump_json(),
        _json(channel.provider_options),
        sealed,
        list(channel.secret_names),
        channel.enabled,
        channel.disabled_reason,
        channel.in_doubt.model_dump_json(exclude_none=True),
    )
    assert row is not None, "update of a channel that was locked and read first"
    return channel_from_row(row)


async def channel_row(
    conn: Executor, tenant_id: str, channel_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    """The tenant's channel with its sealed secrets (``secrets_sealed``), or None."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_CHANNEL_COLUMNS}, secrets_sealed FROM channels"
        f" WHERE tenant_id = $1 AND id = $2{lock}",
        tenant_id,
        channel_id,
    )


async def tenant_channel_rows(conn: Executor, tenant_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE tenant_id = $1 ORDER BY id", tenant_id
    )


_WEBHOOK_COLUMNS = (
    "tenant_id, id, provider, provider_account, phone, secrets_sealed, webhook_token, enabled,"
    " version"
)


async def webhook_rows(conn: Executor) -> list[asyncpg.Record]:
    """What the webhook channel cache needs, for every channel."""
    return await conn.fetch(f"SELECT {_WEBHOOK_COLUMNS} FROM channels")


async def webhook_row(conn: Executor, channel_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_WEBHOOK_COLUMNS} FROM channels WHERE id = $1", channel_id)


# -- outbox ------------------------------------------------------------------------------------


async def enqueue(conn: Executor, event: Event) -> None:
    """Write ``event`` to the outbox; call inside the transaction of the change it announces."""
    await conn.execute(
        "INSERT INTO outbox (event_id, event_type, tenant_id, subject, headers, payload)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
        event.id,
        event.type,
        event.tenant_id,
        subject_for(event),
        _json(publish_headers(event)),
        event.model_dump_json().encode(),
    )


async def unsent(conn: Executor, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT seq, event_type, subject, headers, payload FROM outbox"
        " WHERE sent_at IS NULL ORDER BY seq LIMIT $1",
        limit,
    )


async def mark_sent(conn: Executor, seqs: Sequence[int]) -> None:
    await conn.execute(
        "UPDATE outbox SET sent_at = now() WHERE seq = ANY($1::bigint[])", list(seqs)
    )


async def purge_sent(conn: Executor, older_than_days: int) -> int:
    status = await conn.execute(
        "DELETE FROM outbox WHERE sent_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(status.rsplit(" ", 1)[-1])


# -- send requests (API idempotency) -----------------------------------------------------------

_SEND_COLUMNS = (
    "tenant_id, idempotency_key, fingerprint, message_id, event_id, channel_id, conversation_id"
)


async def channel_enabled(conn: Executor, tenant_id: str, channel_id: str) -> bool | None:
    """Whether the tenant's channel is enabled; None if the tenant has no such channel."""
    enabled: bool | None = await conn.fetchval(
        "SELECT enabled FROM channels WHERE tenant_id = $1 AND id = $2", tenant_id, channel_id
    )
    return enabled


async def insert_send_request(
    conn: Executor,
    *,
    tenant_id: str,
    idempotency_key: str,
    fingerprint: bytes,
    message_id: UUID,
    event_id: UUID,
    channel_id: str,
    conversation_id: UUID | None,
) -> bool:
    """True if stored, False if the tenant already used this key (waits for a concurrent
    transaction holding the same key to finish first)."""
    status = await conn.execute(
        f"INSERT INTO send_requests ({_SEND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
        tenant_id,
        idempotency_key,
        fingerprint,
        message_id,
        event_id,
        channel_id,
        conversation_id,
    )
    return status == "INSERT 0 1"


async def send_request(conn: Executor, tenant_id: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_SEND_COLUMNS} FROM send_requests WHERE tenant_id = $1 AND idempotency_key = $2",
        tenant_id,
        key,
    )


async def purge_send_requests(conn: Executor, older_than_days: int) -> int:
    """Forget API idempotency keys older than ``older_than_days``; returns how many."""
    status = await conn.execute(
        "DELETE FROM send_requests WHERE created_at < now() - make_interval(days => $1)",
        older_than_days,
    )
    return int(status.rsplit(" ", 1)[-1])
