"""The permissions each service's NATS identity gets, derived from the declarations."""

from __future__ import annotations

import pytest

from zapflow.contracts import access
from zapflow.contracts import subjects as s
from zapflow.contracts.queries import compliance_v1, gateway_v1, ingest_v1
from zapflow.contracts.registry import PRODUCERS
from zapflow.contracts.streams import ALL_STREAMS, consumers_owned_by
from zapflow.contracts.subjects import matches
from zapflow.contracts.types import SERVICES


def allowed(patterns: tuple[str, ...], subject: str) -> bool:
    return any(matches(p, subject) for p in patterns)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_publishes_exactly_the_types_the_registry_names_it_for(service: str) -> None:
    publish = access.permissions_for(service).publish  # type: ignore[arg-type]
    for type_name, producers in PRODUCERS.items():
        if type_name == s.DLQ_DEAD_LETTERED_V1:
            continue
        subject = f"{type_name}.acme.ch-1"
        assert allowed(publish, subject) == (service in producers), (service, type_name)


@pytest.mark.parametrize("service", SERVICES)
def test_dead_letters_only_under_the_own_name(service: str) -> None:
    publish = access.permissions_for(service).publish  # type: ignore[arg-type]
    for other in SERVICES:
        subject = s.dead_letter("acme", other)
        assert allowed(publish, subject) == (other == service)


def test_only_the_sender_and_ingest_may_ask_for_channel_credentials() -> None:
    spec = gateway_v1.CHANNEL_CREDENTIALS
    for service in SERVICES:
        perms = access.permissions_for(service)
        asks = [caller for caller in SERVICES if allowed(perms.publish, spec.subject_for(caller))]
        assert asks == ([service] if service in ("sender", "ingest") else []), service
        assert allowed(perms.subscribe, spec.subject_for("sender")) == (service == "gateway")


def test_only_the_gateway_asks_ingest_and_compliance() -> None:
    for spec in (*ingest_v1.QUERIES, *compliance_v1.QUERIES):
        for service in SERVICES:
            perms = access.permissions_for(service)
            may_ask = any(allowed(perms.publish, spec.subject_for(c)) for c in SERVICES)
            assert may_ask == (service == "gateway"), (spec.subject, service)
            assert allowed(perms.subscribe, spec.subject_for("gateway")) == (service == spec.server)


@pytest.mark.parametrize("service", SERVICES)
def test_replies_arrive_only_on_the_own_inbox(service: str) -> None:
    subscribe = access.permissions_for(service).subscribe  # type: ignore[arg-type]
    for other in (*SERVICES, access.ADMIN):
        inbox = f"{access.inbox_prefix(other)}.abc123"
        assert allowed(subscribe, inbox) == (other == service)
    assert not allowed(subscribe, "_INBOX.abc123")


@pytest.mark.parametrize("service", SERVICES)
def test_stream_configuration_is_changed_by_its_owner_only(service: str) -> None:
    publish = access.permissions_for(service).publish  # type: ignore[arg-type]
    for stream in ALL_STREAMS:
        may_update = allowed(publish, f"$JS.API.STREAM.UPDATE.{stream.name}")
        assert may_update == (stream.owner in (service, "shared")), stream.name
        for verb in ("DELETE", "PURGE"):
            assert not allowed(publish, f"$JS.API.STREAM.{verb}.{stream.name}")


@pytest.mark.parametrize("service", SERVICES)
def test_consumers_are_created_and_read_by_their_owner_only(service: str) -> None:
    publish = access.permissions_for(service).publish  # type: ignore[arg-type]
    for other in SERVICES:
        for consumer in consumers_owned_by(other):
            where = f"{consumer.stream}.{consumer.durable}"
            own = other == service
            assert allowed(publish, f"$JS.API.CONSUMER.MSG.NEXT.{where}") == own
            assert allowed(publish, f"$JS.API.CONSUMER.CREATE.{where}") == own
            assert allowed(publish, f"$JS.ACK.{where}.1.2.3.4.5") == own
    for stream in ALL_STREAMS:  # no consumer of its own choosing, no ephemeral reader
        assert not allowed(publish, f"$JS.API.CONSUMER.CREATE.{stream.name}.spy")
        if stream.name not in {r.name for r in access.ORDERED_READS.get(service, ())}:
            assert not allowed(publish, f"$JS.API.CONSUMER.CREATE.{stream.name}")


def test_leases_are_taken_only_in_the_own_groups() -> None:
    sender = access.permissions_for("sender").publish
    compliance = access.permissions_for("compliance").publish
    assert allowed(sender, "$KV.zf_leases.sender-approved.p3")
    assert not allowed(sender, "$KV.zf_leases.compliance-requests.p3")
    assert allowed(compliance, "$KV.zf_leases.compliance-requests.members.r1")
    assert not allowed(compliance, "$KV.zf_leases.sender-approved.p0")
    assert not allowed(access.permissions_for("gateway").publish, "$KV.zf_leases.x.p0")


def test_no_stream_captures_a_query_subject() -> None:
    for spec in access.ALL_QUERIES:
        for caller in spec.callers:
            subject = spec.subject_for(caller)
            for stream in ALL_STREAMS:
                assert not allowed(stream.subjects, subject), (subject, stream.name)


def test_the_declarations_are_sound() -> None:
    access.check_declarations()


def test_a_query_names_its_caller_in_the_last_token() -> None:
    spec = gateway_v1.CHANNEL_CREDENTIALS
    assert spec.subject_for("sender") == "zf.gateway.channel_credentials.v1.sender"
    assert spec.caller_of("zf.gateway.channel_credentials.v1.sender") == "sender"
    assert spec.caller_of("zf.query.ingest.get_media.v1.sender") is None
    with pytest.raises(ValueError, match="does not query itself"):
        type(spec)(
            subject="zf.x.v1",
            request=spec.request,
            reply=spec.reply,
            server="gateway",
            callers=frozenset({"gateway"}),
            description="",
        )


def test_webhook_bodies_are_written_by_the_gateway_and_read_by_ingest() -> None:
    bucket = "zf_inbound_bodies"
    for service in SERVICES:
        publish = access.permissions_for(service).publish
        writes = allowed(publish, f"$O.{bucket}.C.nuid123")
        reads = allowed(publish, f"$JS.API.DIRECT.GET.OBJ_{bucket}.$O.{bucket}.M.bmFtZQ==")
        assert writes == (service == "gateway"), service
        assert reads == (service in ("gateway", "ingest")), service
