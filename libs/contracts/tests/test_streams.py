"""Stream and consumer declarations are consistent with the contracts and with NATS' rules."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import pytest

from zapflow.contracts import streams
from zapflow.contracts.registry import REGISTRY
from zapflow.contracts.routing import (
    consumers_for,
    sample_subject,
    stored_pattern,
    stream_for,
    streams_for,
)
from zapflow.contracts.specs import SHARED, ConsumerSpec, GiB, MiB, StreamSpec
from zapflow.contracts.streams import DAY
from zapflow.contracts.subjects import SEND_PARTITIONS, overlaps
from zapflow.contracts.types import SERVICES

STREAM_NAMES = {stream.name for stream in streams.ALL_STREAMS}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_type_is_stored_by_exactly_one_stream(name: str) -> None:
    assert len(streams_for(name)) == 1


def test_stream_subjects_do_not_overlap() -> None:
    for left, right in combinations(streams.ALL_STREAMS, 2):
        for a in left.subjects:
            assert not any(overlaps(a, b) for b in right.subjects), (left.name, right.name)


def test_names_are_unique() -> None:
    assert len(STREAM_NAMES) == len(streams.ALL_STREAMS)
    keys = Counter((c.stream, c.durable) for c in streams.ALL_CONSUMERS)
    assert max(keys.values()) == 1


@pytest.mark.parametrize("consumer", streams.ALL_CONSUMERS, ids=lambda c: f"{c.stream}/{c.durable}")
def test_every_consumer_reads_registered_types_of_its_stream(consumer: ConsumerSpec) -> None:
    stream = streams.stream_named(consumer.stream)
    stored = [
        stored_pattern(stream, sample_subject(name))
        for name in REGISTRY
        if stream_for(name) is stream
    ]
    for pattern in consumer.filter_subjects:
        assert any(overlaps(pattern, subject) for subject in stored), pattern


@pytest.mark.parametrize(
    "stream",
    [s for s in streams.ALL_STREAMS if s.retention == "workqueue"],
    ids=lambda s: s.name,
)
def test_work_queue_consumers_never_overlap(stream: StreamSpec) -> None:
    consumers = [c for c in streams.ALL_CONSUMERS if c.stream == stream.name]
    assert {c.owner for c in consumers} <= {stream.owner}
    for left, right in combinations(consumers, 2):
        for a in left.filter_subjects:
            assert not any(overlaps(a, b) for b in right.filter_subjects), (left, right)


@pytest.mark.parametrize("group", [streams.SENDER_APPROVED, streams.COMPLIANCE_REQUESTS])
def test_partition_consumers_cover_every_partition_once(group: tuple[ConsumerSpec, ...]) -> None:
    assert sorted(c.partition for c in group if c.partition is not None) == list(
        range(SEND_PARTITIONS)
    )


def test_commands_go_to_a_work_queue_of_the_service_they_address() -> None:
    for name in REGISTRY:
        context = name.split(".")[1]
        if context in SERVICES:
            stream = stream_for(name)
            assert stream.retention == "workqueue", name
            assert stream.owner == context, name
            assert {c.owner for c in consumers_for(name)} <= {context}, name


def test_channel_keyed_subjects_are_stored_with_a_partition_token() -> None:
    approved = "zf.sender.send_approved.v1"
    assert stored_pattern(streams.ZF_SENDER, f"{approved}.acme.c1") == f"{approved}.acme.c1.*"
    assert stored_pattern(streams.ZF_SENDING, "zf.sending.vetoed.v1.acme") == (
        "zf.sending.vetoed.v1.acme"
    )


def test_ownership() -> None:
    assert streams.ZF_DLQ in streams.streams_owned_by("sender")
    assert streams.ZF_DLQ not in streams.streams_owned_by("sender", include_shared=False)
    assert streams.streams_owned_by("sender", include_shared=False) == (streams.ZF_SENDER,)
    assert streams.consumers_owned_by("gateway") == ()
    owned = [c for service in SERVICES for c in streams.consumers_owned_by(service)]
    assert sorted(owned, key=repr) == sorted(streams.ALL_CONSUMERS, key=repr)
    assert {s.owner for s in streams.ALL_STREAMS} <= {*SERVICES, SHARED}
    with pytest.raises(KeyError):
        streams.stream_named("ZF_NOPE")


def test_only_services_with_handlers_declare_durable_consumers() -> None:
    # the dispatcher and realtime have no handlers yet: a durable nothing reads only builds
    # backlog (the runtime refuses to start a service with one, see zapflow.runtime.service)
    consuming = {service for service in SERVICES if streams.consumers_owned_by(service)}
    assert consuming == {"ingest", "compliance", "sender"}


@pytest.mark.parametrize("stream", streams.ALL_STREAMS, ids=lambda s: s.name)
def test_every_stream_is_bounded_in_size_and_age(stream: StreamSpec) -> None:
    assert stream.max_bytes >= MiB
    if stream.max_age_s is None:  # current state, one message per key, never history
        assert stream.max_msgs_per_subject == 1, stream.name
    else:
        assert stream.max_age_s >= DAY, stream.name


@pytest.mark.parametrize("stream", streams.ALL_STREAMS, ids=lambda s: s.name)
def test_only_history_is_discarded_when_a_stream_is_full(stream: StreamSpec) -> None:
    # work queues hold unfinished work, ZF_CHANNELS the current settings and ZF_DLQ the only
    # record of what was given up on: they refuse new messages; event history drops its oldest
    keeps_only_copy = (
        stream.retention == "workqueue"
        or stream.max_msgs_per_subject is not None
        or stream is streams.ZF_DLQ
    )
    assert stream.discard == ("new" if keeps_only_copy else "old"), stream.name


def test_declared_sizes_fit_a_laptop() -> None:
    # nats-server reserves every stream's max_bytes up front against its store limit (75 % of
    # the free disk unless configured); production raises the sizes with ZF_STREAM_MAX_BYTES
    assert sum(stream.max_bytes for stream in streams.ALL_STREAMS) <= 4 * GiB


def _stream(**overrides: object) -> StreamSpec:
    fields: dict[str, object] = {
        "name": "ZF_T",
        "subjects": ("zf.t.>",),
        "retention": "limits",
        "duplicate_window_s": 120.0,
        "max_age_s": 3600.0,
        "max_bytes": 64 * MiB,
        "discard": "old",
        "owner": "ingest",
        "description": "test",
    }
    return StreamSpec(**{**fields, **overrides})  # type: ignore[arg-type]


def _consumer(**overrides: object) -> ConsumerSpec:
    fields: dict[str, object] = {
        "durable": "ingest-t",
        "stream": "ZF_T",
        "filter_subjects": ("zf.t.>",),
        "owner": "ingest",
        "description": "test",
    }
    return ConsumerSpec(**{**fields, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "zf_t"},
        {"subjects": ()},
        {"subjects": ("zf..t",)},
        {"subjects": ("zf.>.t",)},
        {"owner": "nobody"},
        {"duplicate_window_s": 0.0},
        {"max_age_s": 60.0},
        {"max_msgs_per_subject": 0},
        {"max_age_s": None},
        {"max_bytes": 1024},
        {"retention": "workqueue", "discard": "old"},
    ],
)
def test_stream_spec_validates(overrides: dict[str, object]) -> None:
    assert _stream().name == "ZF_T"
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        _stream(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"durable": "Ingest-T"},
        {"durable": "ingest.t"},
        {"durable": "sender-t"},
        {"filter_subjects": ()},
        {"ack_wait_s": 0.0},
        {"max_deliver": 0},
        {"backoff_s": (1.0, 2.0, 3.0), "max_deliver": 3},
        {"backoff_s": (0.0,)},
    ],
)
def test_consumer_spec_validates(overrides: dict[str, object]) -> None:
    assert _consumer().durable == "ingest-t"
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        _consumer(**overrides)


def test_inbound_bodies_outlive_the_events_that_name_them() -> None:
    bucket, events = streams.INBOUND_BODIES, streams.ZF_INBOUND
    assert events.max_age_s is not None
    assert bucket.max_age_s > events.max_age_s
    assert (bucket.owner, bucket.readers) == ("gateway", ("ingest",))
