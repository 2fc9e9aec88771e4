"""Who may publish, subscribe and request what on NATS, derived from the declarations.

Every service connects with an identity of its own (an NKey user; see ``zapflow.runtime.natsauth``)
whose permissions the NATS server enforces. They are computed here from the contracts, so what a
service may do is exactly what its contracts say:

* **publish** the event and command types ``registry.PRODUCERS`` names it for, on every tenant;
  its dead letters only under its own name (``zf.dlq.dead_lettered.v1.*.<service>``);
* **declare** the streams it owns (create, update, info) and the ones it reads from or publishes
  to (create and info only: a stream's configuration is changed by its owner alone);
* **consume** its own durable consumers (create, info, reset, delete, fetch, acknowledge) and
  nobody else's; read the JetStream max-deliveries advisories of those consumers; fetch single
  messages of the streams they read (to dead-letter a message that ran out of deliveries);
* **lease** partitions of its own partitioned consumer groups (keys ``<group>.>`` of the lease
  bucket) and nobody else's;
* **write** the object store buckets it owns, **read** those that name it as a reader (webhook
  bodies too large for an event: the gateway writes, ingest reads);
* **ask** the queries whose declaration names it as a caller, on ``<subject>.<service>``: the
  last token tells the answering service who asks (``zapflow.contracts.queries``);
* **answer** the queries it serves (subscribe ``<subject>.*``; reply to the requester's inbox);
* **receive replies** only on its own inbox prefix ``_INBOX.<service>.>``, so no service can
  read another's replies (channel credentials travel in replies).

Nothing else: a service cannot delete or purge streams, read other services' consumers, or
create consumers of its own choosing. Operator tooling (``zapflow`` CLI: status, dead-letter
replay, audit) uses the separate ``admin`` identity, which the server leaves unrestricted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from zapflow.contracts import subjects as s
from zapflow.contracts.queries import QuerySpec, compliance_v1, gateway_v1, ingest_v1
from zapflow.contracts.registry import PRODUCERS
from zapflow.contracts.routing import stream_for
from zapflow.contracts.specs import SHARED, ConsumerSpec, ObjectStoreSpec, StreamSpec
from zapflow.contracts.streams import (
    ALL_CONSUMERS,
    ALL_OBJECT_STORES,
    ZF_CHANNELS,
    ZF_MESSAGES,
    consumers_owned_by,
    stream_named,
    streams_owned_by,
)
from zapflow.contracts.types import SERVICES, ServiceName

ADMIN: Final = "admin"
"""The operator identity (CLI, jobs, test harness): unrestricted."""

LEASE_BUCKET: Final = "zf_leases"
"""JetStream KV bucket holding partition leases and replica heartbeats."""

ALL_QUERIES: Final[tuple[QuerySpec[Any, Any], ...]] = (
    *gateway_v1.QUERIES,
    *ingest_v1.QUERIES,
    *compliance_v1.QUERIES,
)
"""Every request-reply query of the system."""

ORDERED_READS: Final[dict[str, tuple[StreamSpec, ...]]] = {
    # every sender replica needs every channel's settings: an ordered consumer of its own; and
    # while a send is in doubt, the provider's statuses naming it (status events of its tenant)
    "sender": (ZF_CHANNELS, ZF_MESSAGES),
}
"""Streams a service reads whole with ephemeral ordered consumers instead of a durable."""


def inbox_prefix(identity: str) -> str:
    """The reply-subject prefix ``identity`` connects with (``_INBOX.<identity>``)."""
    return f"_INBOX.{s.token(identity)}"


@dataclass(frozen=True, slots=True)
class Permissions:
    """Subjects one identity may publish to and subscribe to (NATS wildcards allowed)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool


def published_types(service: str) -> tuple[str, ...]:
    """Types ``service`` publishes, by the registry."""
    return tuple(t for t, producers in PRODUCERS.items() if service in producers)


def lease_groups(service: str) -> tuple[str, ...]:
    """Partition lease groups of ``service``: ``<durable>`` of its ``<durable>-p<N>`` consumers."""
    groups = {
        c.durable.rsplit("-p", 1)[0] for c in consumers_owned_by(service) if c.partition is not None
    }
    return tuple(sorted(groups))


def streams_declared_by(service: str) -> tuple[StreamSpec, ...]:
    """Streams ``service`` makes sure exist at start-up: those it owns (and the shared ones),
    those its consumers read, those it publishes to and those it reads whole."""
    declared = {spec.name: spec for spec in streams_owned_by(service)}
    for consumer in consumers_owned_by(service):
        declared.setdefault(consumer.stream, stream_named(consumer.stream))
    for type_name in published_types(service):
        spec = stream_for(type_name)
        declared.setdefault(spec.name, spec)
    for spec in ORDERED_READS.get(service, ()):
        declared.setdefault(spec.name, spec)
    return tuple(declared.values())


def may_update(service: str, stream: StreamSpec) -> bool:
    """Only a stream's owner changes its configuration (every service, for shared streams)."""
    return stream.owner in (service, SHARED)


def _stream_api(service: str, stream: StreamSpec) -> list[str]:
    api = f"$JS.API.STREAM.%s.{stream.name}"
    verbs = ("INFO", "CREATE", "UPDATE") if may_update(service, stream) else ("INFO", "CREATE")
    return [api % verb for verb in verbs]


def _consumer_api(consumer: ConsumerSpec) -> list[str]:
    where = f"{consumer.stream}.{consumer.durable}"
    return [
        f"$JS.API.CONSUMER.CREATE.{where}",
        f"$JS.API.CONSUMER.CREATE.{where}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{where}",
        f"$JS.API.CONSUMER.INFO.{where}",
        f"$JS.API.CONSUMER.DELETE.{where}",
        f"$JS.API.CONSUMER.RESET.{where}",  # a new owner redelivers what the last left, at once
        f"$JS.API.CONSUMER.MSG.NEXT.{where}",
        f"$JS.ACK.{where}.>",
    ]


def _read_api(stream: str) -> list[str]:
    return [f"$JS.API.STREAM.MSG.GET.{stream}", f"$JS.API.DIRECT.GET.{stream}.>"]


def _ordered_read_api(stream: StreamSpec) -> list[str]:
    # ephemeral consumers only (the server names them; a durable needs its name in the
    # subject), and the flow-control replies of their push deliveries
    return [f"$JS.API.CONSUMER.CREATE.{stream.name}", f"$JS.FC.{stream.name}.>"]


def _lease_api(group: str) -> list[str]:
    kv = f"KV_{LEASE_BUCKET}"
    return [
        f"$KV.{LEASE_BUCKET}.{group}.>",
        f"$JS.API.STREAM.INFO.{kv}",
        f"$JS.API.STREAM.CREATE.{kv}",
        f"$JS.API.STREAM.UPDATE.{kv}",  # its replicas and limits follow the deployment's
        f"$JS.API.DIRECT.GET.{kv}.$KV.{LEASE_BUCKET}.{group}.>",
    ]


def _object_store_api(service: str, bucket: ObjectStoreSpec) -> list[str]:
    stream = bucket.stream
    read = [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",  # an object's metadata (last message of its subject)
        f"$JS.API.DIRECT.GET.{stream}.>",
    ]
    if bucket.owner == service:  # create, size, write (and clean up a half-written object)
        return [
            *read,
            f"$JS.API.STREAM.CREATE.{stream}",
            f"$JS.API.STREAM.UPDATE.{stream}",
            f"$JS.API.STREAM.PURGE.{stream}",
            f"$O.{bucket.bucket}.>",
        ]
    if service in bucket.readers:  # an object's chunks come through an ordered consumer
        return [
            *read,
            "$JS.API.STREAM.NAMES",
            f"$JS.API.CONSUMER.CREATE.{stream}",
            f"$JS.FC.{stream}.>",
        ]
    return []


def _dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def permissions_for(service: ServiceName) -> Permissions:
    """What ``service``'s identity may do; see the module docstring."""
    publish: list[str] = [
        s.every(t) for t in published_types(service) if t != s.DLQ_DEAD_LETTERED_V1
    ]
    publish.append(f"{s.DLQ_DEAD_LETTERED_V1}.*.{service}")
    subscribe: list[str] = [f"{inbox_prefix(service)}.>"]
    for stream in streams_declared_by(service):
        publish += _stream_api(service, stream)
    for consumer in consumers_owned_by(service):
        publish += _consumer_api(consumer) + _read_api(consumer.stream)
        subscribe.append(s.max_deliveries_advisory(consumer.stream, consumer.durable))
    for stream in ORDERED_READS.get(service, ()):
        publish += _ordered_read_api(stream)
    for group in lease_groups(service):
        publish += _lease_api(group)
    for bucket in ALL_OBJECT_STORES:
        publish += _object_store_api(service, bucket)
    serves = False
    for query in ALL_QUERIES:
        if service in query.callers:
            publish.append(query.subject_for(service))
        if query.server == service:
            subscribe.append(query.listen)
            serves = True
    return Permissions(_dedupe(publish), _dedupe(subscribe), allow_responses=serves)


def check_declarations() -> None:
    """Raise ``ValueError`` when the declarations cannot be turned into sound permissions."""
    for consumer in ALL_CONSUMERS:
        if consumer.owner not in SERVICES:
            raise ValueError(f"{consumer.durable}: owner {consumer.owner!r} is not a service")
    for query in ALL_QUERIES:
        for other in ALL_QUERIES:
            if query is not other and s.overlaps(query.listen, other.listen):
                raise ValueError(f"queries {query.subject} and {other.subject} overlap")
