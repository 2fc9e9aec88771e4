"""``zapflow audit`` (``zapflow.cli.audit_cmd``) against a real nats-server: Zapflow's side read
from ``ZF_SENDING`` / ``ZF_CHANNELS``, the provider's side from an audit log file.

It lives here, beside the audit logic it drives, because the CLI package has no tests of its own.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import typer
from nats.js import JetStreamContext
from typer.testing import CliRunner

from zapflow.cli import audit_cmd
from zapflow.contracts.channels.v1 import ChannelRegistered, ChannelSettings, PaceSettings
from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import TextContent
from zapflow.contracts.envelope import Event
from zapflow.contracts.sending.v1 import (
    Recipient,
    SendRequest,
    SendRequested,
    SendSucceeded,
    SendVetoed,
    VetoReason,
)
from zapflow.contracts.streams import ZF_CHANNELS, ZF_SENDING
from zapflow.contracts.subjects import subject_for
from zapflow.runtime.broker import Publisher, declare
from zapflow.simulator.auditlog import AuditRecord
from zapflow.testing import unique

pytestmark = pytest.mark.integration
T0 = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)
ANA, BRUNO = "+5511999990001", "+5511999990002"


def request(tenant: str, message_id: UUID, to: str, channel: str = "c1") -> SendRequested:
    return SendRequested(
        tenant_id=tenant,
        request=SendRequest(
            message_id=message_id,
            channel_id=channel,
            to=Recipient(phone=to),
            content=TextContent(body="oi"),
            origin=SendOrigin.OPERATOR,
            idempotency_key=str(message_id),
        ),
    )


def sent(tenant: str, message_id: UUID, channel: str = "c1") -> SendSucceeded:
    return SendSucceeded(
        tenant_id=tenant,
        message_id=message_id,
        channel_id=channel,
        provider="meta",
        provider_message_id=f"wamid.{message_id.hex}",
        attempts=1,
        sent_at=T0,
    )


def record(message_id: UUID, at_ms: int, channel: str = "c1", to: str = ANA) -> AuditRecord:
    return AuditRecord(
        ts=T0 + timedelta(milliseconds=at_ms),
        seq=at_ms,
        provider="meta",
        phone_number_id="109876543210987",
        channel_id=channel,
        to=to.removeprefix("+"),
        wa_id=to.removeprefix("+"),
        wamid=f"wamid.{uuid4().hex}",
        type="text",
        biz_opaque_callback_data=str(message_id),
        content_sha256="0" * 64,
    )


async def publish_all(js: JetStreamContext, events: list[Event]) -> None:
    await declare(js, [ZF_SENDING, ZF_CHANNELS])
    publish = Publisher(js)
    for event in events:
        await publish(subject_for(event), event)


async def scenario(js: JetStreamContext) -> tuple[str, list[AuditRecord]]:
    """m1 fine, m2 accepted twice, m3 recorded sent but never accepted, m4 vetoed, m6 overtook
    m5 (same recipient); the channel's pace is 1/s + 1."""
    tenant = unique("t")
    m1, m2, m3, m4, m5, m6 = (uuid4() for _ in range(6))
    pace = PaceSettings(rate_per_second=1, burst=1)
    channel = ChannelSettings(channel_id="c1", provider="meta", pace=pace)
    vetoed = SendVetoed(
        tenant_id=tenant,
        request=request(tenant, m4, ANA).request,
        decision_id=uuid4(),
        reason=VetoReason.OPTED_OUT,
        text="opted out",
    )
    events: list[Event] = [
        ChannelRegistered(tenant_id=tenant, channel=channel),
        *(request(tenant, m, ANA) for m in (m1, m2, m3, m4)),
        request(tenant, m5, BRUNO),
        request(tenant, m6, BRUNO),
        *(sent(tenant, m) for m in (m1, m2, m3, m5, m6)),
        vetoed,
    ]
    await publish_all(js, events)
    records = [
        record(m1, 0),
        record(m2, 100),
        record(m2, 200),
        record(m6, 300, to=BRUNO),
        record(m5, 400, to=BRUNO),
        record(uuid4(), 500, channel="not-this-tenants"),
    ]
    return tenant, records


async def test_collect_compares_jetstream_with_the_audit_log(
    js: JetStreamContext, nats_url: str
) -> None:
    tenant, records = await scenario(js)

    report = await audit_cmd.collect(nats_url, records, tenant=tenant)

    (c1,) = report.channels
    assert (c1.channel_id, c1.requested, c1.recorded_sent, c1.accepted) == ("c1", 6, 5, 4)
    assert (c1.lost, c1.lost_after_sent, c1.settled_unsent) == (1, 1, 1)
    assert (c1.duplicated, c1.out_of_order, c1.unmatched) == (1, 1, 0)
    assert (c1.max_per_window, c1.pace_limit, c1.over_pace) == (5, 2, True)
    assert not report.ok


async def test_command_prints_the_table_and_fails(
    js: JetStreamContext, nats_url: str, tmp_path: Path
) -> None:
    tenant, records = await scenario(js)
    log = tmp_path / "audit.jsonl"
    log.write_text("".join(r.to_json() + "\n" for r in records))
    args = ["--log", str(log), "--tenant", tenant, "--nats-url", nats_url, "--details"]

    result = await asyncio.to_thread(CliRunner().invoke, typer_app(), args)

    assert result.exit_code == 1, result.output
    header, row, *notes = result.output.splitlines()
    assert header.split() == [
        "CHANNEL",
        "REQUESTED",
        "SENT",
        "ACCEPTED",
        "LOST",
        "DUPLICATED",
        "OUT_OF_ORDER",
        "UNMATCHED",
        "MAX/1S",
        "PACE",
    ]
    assert row.split() == ["c1", "6", "5", "4", "1", "1", "1", "0", "5", "2", "over", "pace"]
    assert any("recorded as sent" in note for note in notes)


async def test_command_passes_on_a_clean_run(
    js: JetStreamContext, nats_url: str, tmp_path: Path
) -> None:
    tenant = unique("t")
    ids = [uuid4() for _ in range(3)]
    await publish_all(
        js, [*(request(tenant, m, ANA) for m in ids), *(sent(tenant, m) for m in ids)]
    )
    log = tmp_path / "audit.jsonl"
    log.write_text("".join(record(m, i * 1000).to_json() + "\n" for i, m in enumerate(ids)))
    args = ["--log", str(log), "--tenant", tenant, "--nats-url", nats_url, "--rate", "1", "--json"]

    result = await asyncio.to_thread(CliRunner().invoke, typer_app(), args)

    assert result.exit_code == 0, result.output
    assert '"ok": true' in result.output


async def test_unreadable_sources_exit_2(nats_url: str, tmp_path: Path) -> None:
    args = ["--log", str(tmp_path / "missing.jsonl"), "--nats-url", nats_url]

    result = await asyncio.to_thread(CliRunner().invoke, typer_app(), args)

    assert result.exit_code == 2


def typer_app() -> typer.Typer:
    """The sub-app mounted the way ``zapflow`` mounts it (``zapflow audit …``), run alone."""
    return audit_cmd.app
