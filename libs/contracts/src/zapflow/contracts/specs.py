"""Declarations of JetStream streams and durable consumers, as plain frozen data.

``zapflow.runtime`` turns them into nats-py ``StreamConfig``/``ConsumerConfig`` and creates them
idempotently at start-up; this module knows nothing about NATS clients. The builders at the end
apply Zapflow's naming (``ZF_<CONTEXT>`` streams, ``<service>-<purpose>-p<N>`` partition
consumers); the declarations themselves are in ``zapflow.contracts.streams`` (which re-exports
``StreamSpec``, ``ConsumerSpec`` and ``SHARED``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from zapflow.contracts.subjects import SEND_PARTITIONS, partition_filter
from zapflow.contracts.subjects import context as context_filter
from zapflow.contracts.types import SERVICES

Retention = Literal["limits", "workqueue", "interest"]
Discard = Literal["old", "new"]
DeliverPolicy = Literal["all", "new"]

_MINUTE: Final = 60.0
_DAY: Final = 86_400.0
MiB: Final = 1024 * 1024
GiB: Final = 1024 * MiB

SHARED: Final = "shared"
"""Owner of a stream every service publishes to; each service ensures it exists at start-up."""

_STREAM_NAME: Final = re.compile(r"^ZF_[A-Z0-9_]+$")
_BUCKET: Final = re.compile(r"^zf_[a-z0-9_]+$")
_DURABLE: Final = re.compile(r"^[a-z]+-[a-z0-9-]+$")
_FILTER: Final = re.compile(r"^[A-Za-z0-9_$-]+(\.([A-Za-z0-9_$-]+|\*))*(\.>)?$")


def _check_filters(where: str, filters: tuple[str, ...]) -> None:
    if not filters:
        raise ValueError(f"{where}: needs at least one subject")
    for pattern in filters:
        if not _FILTER.fullmatch(pattern):
            raise ValueError(f"{where}: invalid subject filter {pattern!r}")


def _check_owner(where: str, owner: str) -> None:
    if owner not in (*SERVICES, SHARED):
        raise ValueError(f"{where}: unknown owner {owner!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamSpec:
    """One stream: which subjects it stores, how long, how much, and which service declares it.

    Every stream is bounded twice: ``max_age_s`` (messages older than that are removed, acked or
    not) and ``max_bytes`` (the stream's size on each server holding it). ``discard`` says what
    happens at ``max_bytes``: ``"old"`` removes the oldest messages to make room (history that
    consumers have read), ``"new"`` refuses the publish (the publisher gets an error and retries;
    nothing stored is lost). Only a last-value stream (``max_msgs_per_subject``) may keep
    messages forever (``max_age_s`` None): it holds current state, not history.

    ``subject_transform`` is a (source, destination) pair applied as messages are stored (used to
    add a partition token); ``max_msgs_per_subject`` keeps only the last N per subject.
    """

    name: str
    subjects: tuple[str, ...]
    retention: Retention
    duplicate_window_s: float
    max_age_s: float | None
    max_bytes: int
    discard: Discard
    owner: str
    description: str
    subject_transform: tuple[str, str] | None = None
    max_msgs_per_subject: int | None = None

    def __post_init__(self) -> None:
        if not _STREAM_NAME.fullmatch(self.name):
            raise ValueError(f"stream name {self.name!r} is not ZF_UPPER_SNAKE")
        _check_filters(self.name, self.subjects)
        _check_owner(self.name, self.owner)
        if self.duplicate_window_s <= 0:
            raise ValueError(f"{self.name}: duplicate window must be positive")
        if self.max_age_s is None and self.max_msgs_per_subject is None:
            raise ValueError(f"{self.name}: only a last-value stream may keep messages forever")
        if self.max_age_s is not None and self.max_age_s < self.duplicate_window_s:
            raise ValueError(f"{self.name}: max age shorter than the duplicate window")
        if self.max_bytes < MiB:
            raise ValueError(f"{self.name}: max_bytes must be at least 1 MiB")
        if self.retention == "workqueue" and self.discard != "new":
            raise ValueError(f"{self.name}: a work queue must refuse new messages when full")
        if self.max_msgs_per_subject is not None and self.max_msgs_per_subject < 1:
            raise ValueError(f"{self.name}: max_msgs_per_subject must be >= 1")


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectStoreSpec:
    """One JetStream object store bucket (stored as stream ``OBJ_<bucket>``): its name, how long
    objects live, how much it holds (writes are refused beyond), who writes and who reads it."""

    bucket: str
    max_age_s: float
    max_bytes: int
    owner: str
    readers: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        if not _BUCKET.fullmatch(self.bucket):
            raise ValueError(f"bucket name {self.bucket!r} is not zf_lower_snake")
        _check_owner(self.bucket, self.owner)
        for reader in self.readers:
            _check_owner(self.bucket, reader)
        if self.max_age_s <= 0:
            raise ValueError(f"{self.bucket}: max age must be positive")
        if self.max_bytes <= 0:  # when full, writes are refused (the writer retries)
            raise ValueError(f"{self.bucket}: max bytes must be positive")

    @property
    def stream(self) -> str:
        """The stream NATS keeps the bucket in."""
        return f"OBJ_{self.bucket}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumerSpec:
    """One durable pull consumer, named ``<service>-<purpose>[-p<N>]``.

    ``backoff_s`` spaces redeliveries after ack timeouts (it overrides ``ack_wait_s`` on the
    server; NATS requires ``max_deliver`` > its length). Retries the code asks for (nak with a
    delay) are not affected. ``partition`` is set on consumers of one partition of a partitioned
    stream; the owning service lets one replica at a time consume each partition.
    """

    durable: str
    stream: str
    filter_subjects: tuple[str, ...]
    owner: str
    description: str
    ack_wait_s: float = 30.0
    max_deliver: int = 10
    max_ack_pending: int = 1000
    backoff_s: tuple[float, ...] = ()
    deliver_policy: DeliverPolicy = "all"
    partition: int | None = None

    def __post_init__(self) -> None:
        where = f"{self.stream}/{self.durable}"
        if not _DURABLE.fullmatch(self.durable):
            raise ValueError(f"{where}: durable name is not <service>-<purpose>")
        if not self.durable.startswith(f"{self.owner}-"):
            raise ValueError(f"{where}: durable name must start with its owner {self.owner!r}")
        _check_filters(where, self.filter_subjects)
        _check_owner(where, self.owner)
        if self.ack_wait_s <= 0 or self.max_deliver < 1 or self.max_ack_pending < 1:
            raise ValueError(f"{where}: ack_wait, max_deliver and max_ack_pending must be positive")
        if self.backoff_s and (len(self.backoff_s) >= self.max_deliver or min(self.backoff_s) <= 0):
            raise ValueError(f"{where}: backoff needs positive delays, fewer than max_deliver")


def events_stream(
    context: str,
    owner: str,
    description: str,
    *,
    max_bytes: int,
    max_age_s: float | None = 30 * _DAY,
    discard: Discard = "old",
    duplicate_window_s: float = 2 * _MINUTE,
    subject_transform: tuple[str, str] | None = None,
    max_msgs_per_subject: int | None = None,
) -> StreamSpec:
    """A limits-retention stream ``ZF_<CONTEXT>`` capturing ``zf.<context>.>``."""
    return StreamSpec(
        name=f"ZF_{context.upper()}",
        subjects=(context_filter(context),),
        retention="limits",
        duplicate_window_s=duplicate_window_s,
        max_age_s=max_age_s,
        max_bytes=max_bytes,
        discard=discard,
        owner=owner,
        description=description,
        subject_transform=subject_transform,
        max_msgs_per_subject=max_msgs_per_subject,
    )


def command_stream(
    context: str,
    owner: str,
    description: str,
    *,
    max_bytes: int = 32 * MiB,
    max_age_s: float = 30 * _DAY,
) -> StreamSpec:
    """A work-queue stream ``ZF_<CONTEXT>`` of commands to ``owner``; refuses new ones when full."""
    return StreamSpec(
        name=f"ZF_{context.upper()}",
        subjects=(context_filter(context),),
        retention="workqueue",
        duplicate_window_s=2 * _MINUTE,
        max_age_s=max_age_s,
        max_bytes=max_bytes,
        discard="new",
        owner=owner,
        description=description,
    )


def partitioned_consumers(
    durable: str,
    stream: StreamSpec,
    type_name: str,
    owner: str,
    description: str,
    *,
    ack_wait_s: float = 30.0,
    max_ack_pending: int = 1000,
) -> tuple[ConsumerSpec, ...]:
    """One consumer per partition of ``type_name``, named ``<durable>-p<N>``."""
    return tuple(
        ConsumerSpec(
            durable=f"{durable}-p{p}",
            stream=stream.name,
            owner=owner,
            partition=p,
            filter_subjects=(partition_filter(type_name, p),),
            ack_wait_s=ack_wait_s,
            max_ack_pending=max_ack_pending,
            description=f"{description} (partition {p})",
        )
        for p in range(SEND_PARTITIONS)
    )
