"""Subjects: built from the contract, safe tokens, and filters that mean what NATS means."""

from __future__ import annotations

import pytest

from zapflow.contracts import subjects as s
from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import InvalidSubjectToken
from zapflow.contracts.registry import REGISTRY
from zapflow.contracts.subjects import matches, overlaps


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_event_has_a_subject_from_its_type_and_tokens(
    name: str, samples: dict[str, Event]
) -> None:
    subject = s.subject_for(samples[name])
    params = s.subject_params(REGISTRY[name])
    assert subject.startswith(f"{name}.acme")
    assert len(subject.split(".")) == len(name.split(".")) + len(params)
    assert params[0] == "tenant"
    assert matches(s.every(name), subject)
    assert matches(s.of_tenant(name, "acme"), subject)
    assert not matches(s.of_tenant(name, "other"), subject)
    assert matches(s.all_versions(name), subject)


def test_channel_keyed_subjects_carry_the_channel(samples: dict[str, Event]) -> None:
    approved = samples[s.SENDER_SEND_APPROVED_V1]
    assert s.subject_for(approved) == "zf.sender.send_approved.v1.acme.sales-1"
    assert s.subject_for(approved) == s.send_approved("acme", "sales-1")
    assert s.subject_for(samples[s.SENDING_REQUESTED_V1]) == s.send_requested("acme", "sales-1")
    assert s.subject_for(samples[s.INBOUND_WEBHOOK_RECEIVED_V1]) == s.webhook_received(
        "acme", "sales-1"
    )
    assert s.subject_for(samples[s.DLQ_DEAD_LETTERED_V1]) == s.dead_letter("acme", "sender")
    assert s.subject_params(REGISTRY[s.SENDER_SEND_APPROVED_V1]) == ("tenant", "channel")


@pytest.mark.parametrize("bad", ["", "a.b", "*", ">", "A", "a b", "é", "-a"])
def test_tokens_are_checked(bad: str) -> None:
    with pytest.raises(InvalidSubjectToken) as caught:
        s.subject(s.MESSAGES_RECEIVED_V1, bad)
    assert caught.value.token == bad
    assert isinstance(caught.value, ValueError)


def test_filters() -> None:
    assert s.every(s.MESSAGES_RECEIVED_V1) == "zf.messages.received.v1.>"
    assert s.of_tenant(s.MESSAGES_RECEIVED_V1, "acme") == "zf.messages.received.v1.acme"
    assert s.of_tenant(s.SENDER_SEND_APPROVED_V1, "acme") == "zf.sender.send_approved.v1.acme.>"
    assert s.all_versions(s.MESSAGES_RECEIVED_V1) == "zf.messages.received.*.>"
    assert s.context("messages") == "zf.messages.>"
    assert s.partition_filter(s.SENDER_SEND_APPROVED_V1, 3) == "zf.sender.send_approved.v1.*.*.3"


def test_partition_transform_uses_nats_mapping_functions() -> None:
    source, destination = s.partition_transform(s.SENDER_SEND_APPROVED_V1, 4)
    assert source == "zf.sender.send_approved.v1.*.*"
    assert destination == (
        "zf.sender.send_approved.v1.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(4,1,2)}}"
    )


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("a.b", "a.b.c", False),
        ("a.b.c", "a.b", False),
        ("*.b", "a.c", False),
    ],
)
def test_matches(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*.1", "a.*.2", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("a", "a.>", False),
        ("a.b", "a.c", False),
        ("a.*", "a.b.c", False),
        ("*.x", "y.*", True),
        ("a.>", "b.>", False),
    ],
)
def test_overlaps_is_symmetric(a: str, b: str, expected: bool) -> None:
    assert overlaps(a, b) is expected
    assert overlaps(b, a) is expected
