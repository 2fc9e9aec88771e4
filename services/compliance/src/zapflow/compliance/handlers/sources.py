"""State compliance keeps from other services' events: channels and cancelled campaigns."""

from __future__ import annotations

from typing import Final

from zapflow.compliance.domain import ChannelState
from zapflow.compliance.ports import Store
from zapflow.contracts.campaigns.v1 import CampaignCancelled
from zapflow.contracts.channels.v1 import ChannelDisabled, ChannelRegistered, ChannelUpdated

CHANNELS_CONSUMER: Final = "compliance-channels"
CAMPAIGNS_CONSUMER: Final = "compliance-campaigns"

ChannelEvent = ChannelRegistered | ChannelUpdated | ChannelDisabled


async def apply_channel_event(evt: ChannelEvent, *, store: Store) -> None:
    """Keep the channel's policy, daily cap, enabled flag and registration date."""
    async with store.unit() as uow:
        if not await uow.claim_event(evt.id, CHANNELS_CONSUMER):
            return
        if isinstance(evt, ChannelDisabled):
            await uow.disable_channel(evt.tenant_id, evt.channel_id, evt.occurred_at)
        else:
            state = ChannelState.from_settings(evt.channel, registered_at=evt.occurred_at)
            await uow.put_channel(evt.tenant_id, state, evt.occurred_at)


async def cancel_campaign(evt: CampaignCancelled, *, store: Store) -> None:
    """Veto the campaign's requests still to come, and its deferred ones right away."""
    async with store.unit() as uow:
        if await uow.claim_event(evt.id, CAMPAIGNS_CONSUMER):
            await uow.cancel_campaign(evt.tenant_id, evt.campaign_id, evt.occurred_at)
