"""Compliance against a real nats-server and PostgreSQL: requests in, decisions out.

One compliance service runs for the module with a movable clock; every test uses its own tenant,
watches that tenant's subjects with a core subscription and publishes contracts like the gateway,
ingest and dispatcher would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from zapflow.compliance.app import create_service
from zapflow.compliance.settings import Settings
from zapflow.contracts.channels.v1 import (
    ChannelPolicy,
    ChannelRegistered,
    ChannelSettings,
    PaceSettings,
)
from zapflow.contracts.common import Actor, ActorKind, SendOrigin
from zapflow.contracts.compliance.v1 import ChangeConsent, ConsentState
from zapflow.contracts.consent.v1 import ConsentSource
from zapflow.contracts.content import OutboundContent, TemplateContent, TextContent
from zapflow.contracts.envelope import Contract, Event
from zapflow.contracts.messages.v1 import MessageReceived
from zapflow.contracts.model import Direction, Message, MessageKind, Party
from zapflow.contracts.queries import ERROR_HEADER, QuerySpec
from zapflow.contracts.queries import compliance_v1 as queries
from zapflow.contracts.sending.v1 import Recipient, SendRequest, SendRequested
from zapflow.contracts.streams import ZF_SENDER, ZF_SENDING
from zapflow.contracts.subjects import subject_for
from zapflow.embedded import free_port
from zapflow.runtime import broker
from zapflow.runtime.service import Service
from zapflow.testing import unique

pytestmark = pytest.mark.integration

PHONE = "+5511999990001"
OTHER = "+5511999990002"
THIRD = "+5511999990003"


class MovableClock:
    """Real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Seen:
    """Every message published on one tenant's subjects, via a core subscription."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []

    async def cb(self, msg: Msg) -> None:
        self.msgs.append(msg)

    def of(self, type_prefix: str) -> list[dict[str, Any]]:
        return [json.loads(m.data) for m in self.msgs if m.subject.startswith(type_prefix)]

    async def wait(self, type_prefix: str, count: int = 1) -> list[Any]:
        async def enough() -> bool:
            return len(self.of(type_prefix)) >= count

        await until(enough)
        return self.of(type_prefix)


async def until(predicate: Callable[[], Awaitable[bool]], within: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def clock() -> MovableClock:
    return MovableClock()


def settings_for(nats_url: str, dsn: str) -> Settings:
    return Settings(
        nats_url=nats_url,
        database_url=dsn,
        http_port=free_port(),
        scheduler_interval_s=0.1,
        outbox_sweep_after_s=1.0,
        unknown_channel_grace_s=10.0,
        shutdown_grace_s=3,
    )


@pytest_asyncio.fixture(scope="module")
async def service(nats_url: str, pg_dsn: str, clock: MovableClock) -> AsyncIterator[Service]:
    async with create_service(settings_for(nats_url, pg_dsn), clock=clock).running() as svc:
        yield svc


@pytest_asyncio.fixture(scope="module")
async def db(pg_dsn: str, service: Service) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


class World:
    """One tenant's view of the system: publish like the other services, see what comes out."""

    def __init__(self, js: JetStreamContext, nc: Client, db: asyncpg.Pool, clock: MovableClock):
        self.tenant = unique("t")
        self.channel = unique("ch")
        self.js, self.nc, self.db, self.clock = js, nc, db, clock
        self.seen = Seen()
        self.publish = broker.Publisher(js)

    async def start(self) -> World:
        for pattern in (f"zf.*.*.v1.{self.tenant}", f"zf.*.*.v1.{self.tenant}.>"):
            await self.nc.subscribe(pattern, cb=self.seen.cb)
        await broker.declare(self.js, [ZF_SENDER])
        return self

    async def send(self, event: Event) -> None:
        await self.publish(subject_for(event), event)

    async def register_channel(self, policy: ChannelPolicy | None = None, cap: int | None = None):
        await self.send(
            ChannelRegistered(
                tenant_id=self.tenant,
                occurred_at=self.clock.now(),
                channel=ChannelSettings(
                    channel_id=self.channel,
                    provider="simulator",
                    pace=PaceSettings(rate_per_second=10, daily_cap=cap),
                    policy=policy or ChannelPolicy(),
                ),
            )
        )
        await self.wait_row("channels")

    async def wait_row(self, table: str, extra: str = "", *args: object) -> None:
        sql = f"SELECT count(*) FROM compliance.{table} WHERE tenant_id = $1 {extra}"

        async def found() -> bool:
            return bool(await self.db.fetchval(sql, self.tenant, *args))

        await until(found)

    async def inbound(self, text: str, phone: str = PHONE) -> MessageReceived:
        evt = MessageReceived(
            tenant_id=self.tenant,
            occurred_at=self.clock.now(),
            message_id=uuid4(),
            conversation_id=uuid4(),
            contact_id=uuid4(),
            channel_id=self.channel,
            provider="simulator",
            message=Message(
                provider_message_id=unique("wamid"),
                direction=Direction.INBOUND,
                kind=MessageKind.TEXT,
                sent_at=self.clock.now(),
                contact=Party(phone=phone),
                text=text,
            ),
        )
        await self.send(evt)
        return evt

    def request(
        self,
        content: OutboundContent | None = None,
        origin: SendOrigin = SendOrigin.OPERATOR,
        phone: str = PHONE,
    ) -> SendRequested:
        campaign = origin is SendOrigin.CAMPAIGN
        return SendRequested(
            tenant_id=self.tenant,
            occurred_at=self.clock.now(),
            request=SendRequest(
                message_id=uuid4(),
                channel_id=self.channel,
                to=Recipient(phone=phone),
                content=content or TextContent(body="Olá! Como posso ajudar?"),
                origin=origin,
                campaign_id=uuid4() if campaign else None,
                recipient_id=uuid4() if campaign else None,
                idempotency_key=unique("idem"),
            ),
        )

    async def query(self, spec: QuerySpec[Any, Any], body: Contract) -> dict[str, Any]:
        subject = spec.subject_for("gateway")  # the gateway is its only caller
        reply = await self.nc.request(subject, body.model_dump_json().encode(), timeout=5)
        assert not (reply.headers or {}).get(ERROR_HEADER), reply.data
        data: dict[str, Any] = json.loads(reply.data)
        return data


@pytest_asyncio.fixture
async def world(js: JetStreamContext, nc: Client, db: asyncpg.Pool, clock: MovableClock) -> World:
    return await World(js, nc, db, clock).start()


TEMPLATE = TemplateContent(name="promo", language="pt_BR", body_params=("Ana",))


async def stored_partition(js: JetStreamContext, stream: str, prefix: str) -> list[str]:
    info = await js.stream_info(stream, subjects_filter=f"{prefix}.*")
    return sorted((info.state.subjects or {}).keys())


async def test_an_approved_request_lands_on_the_senders_stream_in_the_same_partition(
    world: World,
) -> None:
    await world.register_channel()
    await world.inbound("Oi, preciso de ajuda")
    await world.wait_row("service_windows")
    req = world.request()
    await world.send(req)

    approved = await world.seen.wait("zf.sender.send_approved.v1")
    assert approved[0]["request"]["message_id"] == str(req.request.message_id)
    t, c = world.tenant, world.channel
    js = world.js
    requested = await stored_partition(js, ZF_SENDING.name, f"zf.sending.requested.v1.{t}.{c}")
    landed = await stored_partition(js, ZF_SENDER.name, f"zf.sender.send_approved.v1.{t}.{c}")
    assert len(requested) == len(landed) == 1
    assert requested[0].rsplit(".", 1)[1] == landed[0].rsplit(".", 1)[1]

    reply = await world.query(
        queries.DECISION, queries.DecisionQuery(tenant_id=t, message_id=req.request.message_id)
    )
    assert reply["found"] is True
    assert reply["outcome"] == "approved"
    other = await world.query(
        queries.DECISION,
        queries.DecisionQuery(tenant_id=unique("t"), message_id=req.request.message_id),
    )
    assert other["found"] is False  # never across tenants


async def test_a_veto_carries_its_reason_code_and_text(world: World) -> None:
    await world.register_channel()
    free_form = world.request(origin=SendOrigin.API)  # the contact never wrote: no window
    await world.send(free_form)
    await world.send(world.request(content=TextContent(body="   "), origin=SendOrigin.API))

    vetoed = await world.seen.wait("zf.sending.vetoed.v1", 2)
    by_reason = {v["reason"]: v for v in vetoed}
    assert set(by_reason) == {"outside_window", "invalid_content"}
    assert "24 h" in by_reason["outside_window"]["text"]
    assert "empty" in by_reason["invalid_content"]["text"]
    assert PHONE not in json.dumps([v["text"] for v in vetoed])
    assert not world.seen.of("zf.sender.send_approved.v1")


async def test_opt_out_keyword_confirms_and_blocks_later_campaigns(world: World) -> None:
    await world.register_channel()
    stop = await world.inbound("  Sáir! ")

    opted_out = await world.seen.wait("zf.consent.opted_out.v1")
    assert opted_out[0]["phone"] == PHONE
    assert opted_out[0]["keyword"] == "SAIR"
    approved = await world.seen.wait("zf.sender.send_approved.v1")
    confirmation = approved[0]["request"]
    assert confirmation["content"]["body"].startswith("Pronto")
    assert confirmation["requested_by"] == {"kind": "system", "id": "compliance"}
    assert world.seen.of("zf.sending.requested.v1")[0]["causation_id"] == str(stop.id)

    campaign = world.request(content=TEMPLATE, origin=SendOrigin.CAMPAIGN)
    operator = world.request(content=TextContent(body="Tudo bem?"))
    await world.send(campaign)
    await world.send(operator)
    vetoed = await world.seen.wait("zf.sending.vetoed.v1", 2)
    assert {v["reason"] for v in vetoed} == {"opted_out"}
    assert len(world.seen.of("zf.sender.send_approved.v1")) == 1

    consent = await world.query(
        queries.CONSENT,
        queries.ConsentQuery(tenant_id=world.tenant, address=PHONE, channel_id=world.channel),
    )
    assert consent["state"] == "opted_out"
    assert consent["source"] == "keyword"


async def test_the_same_content_twice_is_a_duplicate(world: World) -> None:
    await world.register_channel()
    first = world.request(content=TEMPLATE, origin=SendOrigin.API)
    second = world.request(content=TEMPLATE, origin=SendOrigin.API)
    other = world.request(content=TEMPLATE, origin=SendOrigin.API, phone=OTHER)
    await world.send(first)
    await world.seen.wait("zf.sender.send_approved.v1")
    await world.send(second)
    await world.send(other)

    vetoed = await world.seen.wait("zf.sending.vetoed.v1")
    assert vetoed[0]["reason"] == "duplicate"
    assert vetoed[0]["request"]["message_id"] == str(second.request.message_id)
    approved = await world.seen.wait("zf.sender.send_approved.v1", 2)
    assert {a["request"]["message_id"] for a in approved} == {
        str(first.request.message_id),
        str(other.request.message_id),
    }


async def test_a_redelivered_request_is_decided_once_and_published_once(world: World) -> None:
    await world.register_channel()
    req = world.request(content=TEMPLATE, origin=SendOrigin.API)
    for _ in range(2):  # a producer re-publishing beyond the duplicate window: two deliveries
        await world.js.publish(
            subject_for(req),
            req.model_dump_json().encode(),
            headers={"Nats-Msg-Id": str(uuid4()), "Zf-Type": req.type},
        )
    await world.seen.wait("zf.sender.send_approved.v1")
    await world.wait_row("decisions")
    await asyncio.sleep(1.0)  # give a second decision every chance to happen

    assert len(world.seen.of("zf.sender.send_approved.v1")) == 1
    assert (
        await world.db.fetchval(
            "SELECT count(*) FROM compliance.decisions WHERE tenant_id = $1", world.tenant
        )
        == 1
    )


async def test_a_campaign_in_quiet_hours_is_deferred_then_approved(world: World) -> None:
    local_now = world.clock.now()
    policy = ChannelPolicy(
        timezone="UTC",
        quiet_hours_start=(local_now - timedelta(hours=1)).time().replace(microsecond=0),
        quiet_hours_end=(local_now + timedelta(hours=1)).time().replace(microsecond=0),
    )
    await world.register_channel(policy)
    campaign = world.request(content=TEMPLATE, origin=SendOrigin.CAMPAIGN)
    reply_ = world.request(content=TEMPLATE, origin=SendOrigin.OPERATOR)
    await world.send(campaign)
    await world.send(reply_)

    deferred = await world.seen.wait("zf.sending.deferred.v1")
    assert deferred[0]["reason"] == "quiet_hours"
    until_ = datetime.fromisoformat(deferred[0]["until"])
    assert until_.time().replace(tzinfo=None) == policy.quiet_hours_end
    approved = await world.seen.wait("zf.sender.send_approved.v1")  # the operator reply
    assert approved[0]["request"]["message_id"] == str(reply_.request.message_id)

    world.clock.offset += until_ - world.clock.now() + timedelta(seconds=1)
    approved = await world.seen.wait("zf.sender.send_approved.v1", 2)
    assert approved[1]["request"]["message_id"] == str(campaign.request.message_id)
    decision = await world.query(
        queries.DECISION,
        queries.DecisionQuery(tenant_id=world.tenant, message_id=campaign.request.message_id),
    )
    assert decision["outcome"] == "approved"
    assert decision["evaluations"] == 2


async def test_tenant_rules_can_be_read_and_replaced(world: World) -> None:
    default = await world.query(queries.RULES, queries.RulesQuery(tenant_id=world.tenant))
    assert default["is_default"] is True
    assert "SAIR" in default["rules"]["opt_out_keywords"]

    rules = {"opt_out_keywords": ["CHEGA"], "duplicate_interval_s": 0}
    put = await world.query(
        queries.PUT_RULES,
        queries.PutRules.model_validate({"tenant_id": world.tenant, "rules": rules}),
    )
    assert put["rules"]["opt_out_keywords"] == ["CHEGA"]
    again = await world.query(queries.RULES, queries.RulesQuery(tenant_id=world.tenant))
    assert again["is_default"] is False
    assert again["rules"]["duplicate_interval_s"] == 0

    bad = await world.nc.request(
        queries.PUT_RULES.subject_for("gateway"),
        json.dumps({"tenant_id": world.tenant, "rules": {"timezone": "Mars/Base"}}).encode(),
        timeout=5,
    )
    assert bad.headers is not None
    assert bad.headers[ERROR_HEADER] == "bad_request"
    assert "unknown time zone" in json.loads(bad.data)["message"]


async def test_campaigns_need_an_opt_in_when_the_channel_requires_it(world: World) -> None:
    await world.register_channel(ChannelPolicy(require_opt_in=True))
    await world.send(world.request(content=TEMPLATE, origin=SendOrigin.CAMPAIGN))
    vetoed = await world.seen.wait("zf.sending.vetoed.v1")
    assert vetoed[0]["reason"] == "no_opt_in"

    await world.send(
        ChangeConsent(
            tenant_id=world.tenant,
            occurred_at=world.clock.now(),
            phone=PHONE,
            state=ConsentState.OPTED_IN,
            source=ConsentSource.API,
            requested_by=Actor(kind=ActorKind.API_KEY, id="key-1"),
        )
    )
    opted_in = await world.seen.wait("zf.consent.opted_in.v1")
    assert opted_in[0]["source"] == "api"
    second = world.request(content=TEMPLATE, origin=SendOrigin.CAMPAIGN)
    await world.send(second)
    approved = await world.seen.wait("zf.sender.send_approved.v1")
    assert approved[0]["request"]["message_id"] == str(second.request.message_id)


async def test_campaigns_over_the_daily_cap_wait_for_the_next_day(world: World) -> None:
    await world.register_channel(ChannelPolicy(timezone="America/Sao_Paulo"), cap=1)
    await world.send(world.request(content=TEMPLATE, origin=SendOrigin.CAMPAIGN))
    await world.seen.wait("zf.sender.send_approved.v1")
    await world.send(world.request(content=TEMPLATE, origin=SendOrigin.CAMPAIGN, phone=OTHER))
    await world.send(world.request(content=TEMPLATE, origin=SendOrigin.API, phone=THIRD))

    deferred = await world.seen.wait("zf.sending.deferred.v1")
    assert deferred[0]["reason"] == "daily_cap"
    until_ = datetime.fromisoformat(deferred[0]["until"]).astimezone(ZoneInfo("America/Sao_Paulo"))
    assert (until_.hour, until_.minute) == (0, 0)
    vetoed = await world.seen.wait("zf.sending.vetoed.v1")
    assert vetoed[0]["reason"] == "daily_cap"  # not a campaign: refused, not postponed
