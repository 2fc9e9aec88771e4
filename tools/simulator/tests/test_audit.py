"""``zapflow.simulator.audit`` on crafted data (lost, duplicated, out of order, window,
matching) and ``expected_sends`` on crafted contract events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from zapflow.contracts.common import SendOrigin
from zapflow.contracts.content import TextContent
from zapflow.contracts.sending.v1 import (
    FailureReason,
    Recipient,
    SendFailed,
    SendRequest,
    SendRequested,
    SendSucceeded,
)
from zapflow.simulator.audit import ExpectedSend, Outcome, Pace, audit, max_in_window
from zapflow.simulator.auditlog import AuditRecord
from zapflow.simulator.expected import expected_sends

T0 = datetime(2025, 11, 20, 14, 0, tzinfo=UTC)


def req(
    message_id: str,
    recipient: str = "+5511999990001",
    outcome: Outcome = "sent",
    channel: str = "c1",
    wamid: str | None = None,
) -> ExpectedSend:
    return ExpectedSend(message_id, channel, recipient, outcome, wamid)


def rec(
    opaque: str | None,
    at_ms: int = 0,
    channel: str = "c1",
    wamid: str | None = None,
) -> AuditRecord:
    return AuditRecord(
        ts=T0 + timedelta(milliseconds=at_ms),
        seq=0,
        provider="meta",
        phone_number_id="1",
        channel_id=channel,
        to="5511999990001",
        wa_id="5511999990001",
        wamid=wamid or f"wamid.{opaque}.{at_ms}",
        type="text",
        biz_opaque_callback_data=opaque,
        content_sha256="0" * 64,
    )


def test_clean_run() -> None:
    report = audit([req("a"), req("b")], [rec("a", 0), rec("b", 10)])

    c1 = report.channel("c1")
    assert (c1.requested, c1.recorded_sent, c1.accepted) == (2, 2, 2)
    assert (c1.lost, c1.duplicated, c1.out_of_order, c1.unmatched) == (0, 0, 0, 0)
    assert report.ok


def test_lost_counts_unaccepted_sends_except_vetoed_and_failed() -> None:
    expected = [
        req("sent-never-accepted", outcome="sent"),
        req("still-pending", outcome="pending"),
        req("vetoed", outcome="vetoed"),
        req("failed", outcome="failed"),
        req("ok"),
    ]
    c1 = audit(expected, [rec("ok")]).channel("c1")

    assert (c1.lost, c1.lost_after_sent, c1.settled_unsent) == (2, 1, 2)
    assert set(c1.lost_ids) == {"sent-never-accepted", "still-pending"}
    assert not c1.ok


def test_duplicates_count_extra_acceptances() -> None:
    c1 = audit([req("a"), req("b")], [rec("a", 0), rec("a", 5), rec("a", 9), rec("b", 12)]).channel(
        "c1"
    )

    assert (c1.accepted, c1.duplicated, c1.duplicated_ids) == (2, 2, ("a",))
    assert c1.out_of_order == 0  # the first acceptance of "a" counts for order


def test_repeated_requests_keep_their_first_place() -> None:
    c1 = audit([req("a"), req("b"), req("a")], [rec("a"), rec("b", 1)]).channel("c1")

    assert (c1.requested, c1.duplicated, c1.out_of_order) == (2, 0, 0)


@pytest.mark.parametrize(
    ("accepted_order", "disordered"),
    [
        ("abcd", 0),
        ("bacd", 1),
        ("dabc", 1),  # d overtook three: moving d alone restores the order
        ("dcba", 3),
        ("acbd", 1),
    ],
)
def test_out_of_order_is_per_recipient_minimum_moves(accepted_order: str, disordered: int) -> None:
    expected = [req(m) for m in "abcd"]
    records = [rec(m, i) for i, m in enumerate(accepted_order)]

    assert audit(expected, records).channel("c1").out_of_order == disordered


def test_order_is_only_compared_within_one_recipient() -> None:
    expected = [req("a1", "+551"), req("b1", "+552"), req("a2", "+551"), req("b2", "+552")]
    records = [rec("b1"), rec("b2"), rec("a1"), rec("a2")]

    assert audit(expected, records).channel("c1").out_of_order == 0


def test_records_match_by_provider_id_without_opaque_data() -> None:
    expected = [req("a", wamid="wamid.A"), req("b", wamid="wamid.B")]
    records = [rec(None, 0, wamid="wamid.B"), rec(None, 5, wamid="wamid.A"), rec(None, 9)]

    c1 = audit(expected, records).channel("c1")
    assert (c1.accepted, c1.out_of_order, c1.unmatched) == (2, 1, 1)


def test_channels_are_reported_apart() -> None:
    expected = [req("a", channel="c1"), req("b", channel="c2")]
    report = audit(expected, [rec("a", channel="c1"), rec("x", channel="c3")])

    assert [c.channel_id for c in report.channels] == ["c1", "c2", "c3"]
    assert report.channel("c2").lost == 1
    assert report.channel("c3").unmatched == 1


def test_max_per_window_against_pace() -> None:
    records = [rec(f"m{i}", at_ms) for i, at_ms in enumerate([0, 100, 200, 999, 1000, 1500, 1999])]
    report = audit([], records, paces={"c1": Pace(rate_per_second=2, burst=1)})

    c1 = report.channel("c1")
    assert (c1.max_per_window, c1.pace_limit) == (4, 3)
    assert c1.over_pace
    assert report.ok  # pace is reported apart from lost/duplicated/out of order
    assert report.over_pace


def test_max_in_window_is_half_open() -> None:
    times = [T0 + timedelta(milliseconds=ms) for ms in (0, 500, 1000, 1000, 1999)]

    assert max_in_window(times, 1.0) == 3  # 1000, 1000, 1999; 0 and 1000 are a full second apart
    assert max_in_window([], 1.0) == 0
    assert Pace(80, 80).allowed(1.0) == 160
    assert Pace(0.5, 1).allowed(2.0) == 2


def test_expected_sends_from_events() -> None:
    a, b, c = uuid4(), uuid4(), uuid4()

    def requested(m: UUID, channel: str = "c1", tenant: str = "t1") -> SendRequested:
        request = SendRequest(
            message_id=m,
            channel_id=channel,
            to=Recipient(phone="+5511999990001"),
            content=TextContent(body="oi"),
            origin=SendOrigin.API,
            idempotency_key=str(m),
        )
        return SendRequested(tenant_id=tenant, request=request)

    failed = SendFailed(
        tenant_id="t1",
        message_id=a,
        channel_id="c1",
        provider="meta",
        reason=FailureReason.PROVIDER_UNAVAILABLE,
        permanent=False,
        attempts=3,
        failed_at=T0,
    )
    succeeded = SendSucceeded(
        tenant_id="t1",
        message_id=a,
        channel_id="c1",
        provider="meta",
        provider_message_id="wamid.A",
        attempts=4,
        sent_at=T0,
    )
    events = [
        requested(a),
        requested(b, channel="c2"),
        requested(c, tenant="t2"),
        requested(a),
        succeeded,
        failed,
    ]

    result = expected_sends(events, tenant_id="t1", channels=frozenset({"c1"}))

    assert result == [ExpectedSend(str(a), "c1", "+5511999990001", "sent", "wamid.A")]
