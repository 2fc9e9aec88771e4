"""SQL for what compliance learns from events: rules, channels, consents, windows, campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from zapflow.compliance.adapters._sql import (
    CHANNEL_COLUMNS,
    Conn,
    channel_from,
    fetch_consents,
    inserted,
)
from zapflow.compliance.domain import ChannelState, ConsentRecord, TenantRules


class FactsSql:
    """Half of ``PgUnit``: the state other services' events and commands build."""

    _c: Conn

    async def claim_event(self, event_id: UUID, consumer: str) -> bool:
        return inserted(
            await self._c.execute(
                "INSERT INTO processed_events (event_id, consumer) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                event_id,
                consumer,
            )
        )

    async def rules(self, tenant_id: str) -> TenantRules:
        raw = await self._c.fetchval(
            "SELECT rules FROM tenant_rules WHERE tenant_id = $1", tenant_id
        )
        return TenantRules() if raw is None else TenantRules.load(raw)

    async def channel(self, tenant_id: str, channel_id: str) -> ChannelState | None:
        row = await self._c.fetchrow(
            f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE tenant_id = $1 AND channel_id = $2",
            tenant_id,
            channel_id,
        )
        return None if row is None else channel_from(row)

    async def put_channel(self, tenant_id: str, channel: ChannelState, at: datetime) -> None:
        await self._c.execute(
            f"""
            INSERT INTO channels AS c (tenant_id, {CHANNEL_COLUMNS}, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (tenant_id, channel_id) DO UPDATE SET
                provider = excluded.provider, timezone = excluded.timezone,
                quiet_hours_start = excluded.quiet_hours_start,
                quiet_hours_end = excluded.quiet_hours_end,
                require_opt_in = excluded.require_opt_in,
                service_window_hours = excluded.service_window_hours,
                daily_cap = excluded.daily_cap, enabled = excluded.enabled,
                updated_at = excluded.updated_at
            WHERE c.updated_at <= excluded.updated_at
            """,
            tenant_id,
            channel.channel_id,
            channel.provider,
            channel.timezone,
            channel.quiet_hours_start,
            channel.quiet_hours_end,
            channel.require_opt_in,
            channel.service_window_hours,
            channel.daily_cap,
            channel.enabled,
            channel.registered_at,
            at,
        )
        await self._c.execute(  # a late ChannelRegistered still tells the registration date
            "UPDATE channels SET registered_at = $3"
            " WHERE tenant_id = $1 AND channel_id = $2 AND registered_at > $3",
            tenant_id,
            channel.channel_id,
            channel.registered_at,
        )

    async def disable_channel(self, tenant_id: str, channel_id: str, at: datetime) -> None:
        await self._c.execute(
            "UPDATE channels SET enabled = false, updated_at = $3"
            " WHERE tenant_id = $1 AND channel_id = $2 AND updated_at <= $3",
            tenant_id,
            channel_id,
            at,
        )

    async def consents(self, tenant_id: str, addresses: Sequence[str]) -> list[ConsentRecord]:
        return await fetch_consents(self._c, tenant_id, addresses)

    async def put_consent(self, tenant_id: str, address: str, record: ConsentRecord) -> bool:
        status = await self._c.execute(
            """
            INSERT INTO consents AS c (tenant_id, address, channel_id, state, source, changed_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (tenant_id, address, channel_id) DO UPDATE
                SET state = excluded.state, source = excluded.source,
                    changed_at = excluded.changed_at
                WHERE c.changed_at < excluded.changed_at
            """,
            tenant_id,
            address,
            record.channel_id or "",
            record.state.value,
            record.source.value,
            record.changed_at,
        )
        return inserted(status)

    async def last_inbound(
        self, tenant_id: str, channel_id: str, addresses: Sequence[str]
    ) -> datetime | None:
        value: datetime | None = await self._c.fetchval(
            "SELECT max(last_inbound_at) FROM service_windows"
            " WHERE tenant_id = $1 AND channel_id = $2 AND address = ANY($3::text[])",
            tenant_id,
            channel_id,
            list(addresses),
        )
        return value

    async def record_inbound(
        self, tenant_id: str, channel_id: str, addresses: Sequence[str], at: datetime
    ) -> None:
        await self._c.executemany(
            """
            INSERT INTO service_windows AS w (tenant_id, channel_id, address, last_inbound_at)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (tenant_id, channel_id, address) DO UPDATE
                SET last_inbound_at = GREATEST(w.last_inbound_at, excluded.last_inbound_at)
            """,
            [(tenant_id, channel_id, a, at) for a in addresses],
        )

    async def is_confirmation(self, tenant_id: str, message_id: UUID) -> bool:
        return bool(
            await self._c.fetchval(
                "SELECT EXISTS (SELECT 1 FROM confirmations"
                " WHERE message_id = $1 AND tenant_id = $2)",
                message_id,
                tenant_id,
            )
        )

    async def add_confirmation(self, tenant_id: str, message_id: UUID) -> None:
        await self._c.execute(
            "INSERT INTO confirmations (message_id, tenant_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            message_id,
            tenant_id,
        )

    async def campaign_cancelled(self, tenant_id: str, campaign_id: UUID) -> bool:
        return bool(
            await self._c.fetchval(
                "SELECT EXISTS (SELECT 1 FROM cancelled_campaigns"
                " WHERE tenant_id = $1 AND campaign_id = $2)",
                tenant_id,
                campaign_id,
            )
        )

    async def cancel_campaign(self, tenant_id: str, campaign_id: UUID, at: datetime) -> None:
        await self._c.execute(
            "INSERT INTO cancelled_campaigns (tenant_id, campaign_id, cancelled_at)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            tenant_id,
            campaign_id,
            at,
        )
        await self._c.execute(
            "UPDATE deferred_sends SET due_at = LEAST(due_at, $3)"
            " WHERE tenant_id = $1 AND campaign_id = $2",
            tenant_id,
            campaign_id,
            at,
        )
