"""Consumers and query responders: parse the contract, call the handler. No rules here."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from nats.aio.msg import Msg

from zapflow.compliance import handlers
from zapflow.compliance.ports import Clock, Publisher, Store
from zapflow.contracts import headers as h
from zapflow.contracts import streams
from zapflow.contracts import subjects as s
from zapflow.contracts.campaigns.v1 import CampaignCancelled
from zapflow.contracts.channels.v1 import ChannelDisabled, ChannelRegistered, ChannelUpdated
from zapflow.contracts.compliance.v1 import ChangeConsent
from zapflow.contracts.messages.v1 import MessageReceived
from zapflow.contracts.queries import compliance_v1 as queries
from zapflow.contracts.sending.v1 import SendRequested
from zapflow.runtime.service import Service

logger = logging.getLogger(__name__)

_CHANNEL_EVENTS: dict[str, type[ChannelRegistered | ChannelUpdated | ChannelDisabled]] = {
    s.CHANNELS_REGISTERED_V1: ChannelRegistered,
    s.CHANNELS_UPDATED_V1: ChannelUpdated,
    s.CHANNELS_DISABLED_V1: ChannelDisabled,
}


@dataclass(frozen=True, slots=True)
class Deps:
    store: Store
    publish: Publisher
    clock: Clock
    unknown_channel_grace: timedelta


def _event_type(msg: Msg) -> str:
    declared = (msg.headers or {}).get(h.ZF_TYPE)
    return declared or str(json.loads(msg.data).get("type", ""))


def register_consumers(svc: Service, deps: Deps, *, batch: int) -> None:
    async def on_request(msg: Msg) -> None:
        evt = SendRequested.model_validate_json(msg.data)
        await handlers.decide_request(
            evt, store=deps.store, publish=deps.publish, clock=deps.clock,
            unknown_channel_grace=deps.unknown_channel_grace,
        )  # fmt: skip

    async def on_inbound(msg: Msg) -> None:
        evt = MessageReceived.model_validate_json(msg.data)
        await handlers.record_inbound(evt, store=deps.store, publish=deps.publish, clock=deps.clock)

    async def on_command(msg: Msg) -> None:
        evt = ChangeConsent.model_validate_json(msg.data)
        await handlers.change_consent(evt, store=deps.store, publish=deps.publish, clock=deps.clock)

    async def on_channel(msg: Msg) -> None:
        model = _CHANNEL_EVENTS.get(_event_type(msg))
        if model is None:
            logger.info("ignored channel event", extra={"subject": msg.subject})
            return
        await handlers.apply_channel_event(model.model_validate_json(msg.data), store=deps.store)

    async def on_campaign(msg: Msg) -> None:
        evt = CampaignCancelled.model_validate_json(msg.data)
        await handlers.cancel_campaign(evt, store=deps.store)

    svc.consume_partitioned(streams.COMPLIANCE_REQUESTS, on_request, batch=batch)
    svc.consume(streams.COMPLIANCE_INBOUND, on_inbound)
    svc.consume(streams.COMPLIANCE_COMMANDS, on_command)
    svc.consume(streams.COMPLIANCE_CHANNELS, on_channel)
    svc.consume(streams.COMPLIANCE_CAMPAIGNS, on_campaign)


async def start_queries(svc: Service, deps: Deps) -> None:
    """Answer compliance's queries (``zapflow.runtime.rpc``: only the gateway may ask)."""
    store = deps.store

    async def decision(q: queries.DecisionQuery, _caller: str) -> queries.DecisionReply:
        return await handlers.find_decision(q, store=store)

    async def rules(q: queries.RulesQuery, _caller: str) -> queries.RulesReply:
        return await handlers.get_rules(q, store=store)

    async def put(q: queries.PutRules, _caller: str) -> queries.RulesReply:
        return await handlers.put_rules(q, store=store, clock=deps.clock)

    async def consent(q: queries.ConsentQuery, _caller: str) -> queries.ConsentReply:
        return await handlers.find_consent(q, store=store)

    await svc.serve(queries.DECISION, decision)
    await svc.serve(queries.RULES, rules)
    await svc.serve(queries.PUT_RULES, put)
    await svc.serve(queries.CONSENT, consent)
