"""NATS subjects: ``zf.<context>.<event>.v<N>.<tenant>[.<partition>…]``.

The part up to the version equals the event's ``type``; the tokens after it are named by the
model's ``subject_fields`` (tenant, then channel or service). Publish with ``subject_for(event)``;
consume with the filters built here. No service writes a subject string literal.

Send requests and approvals are partitioned by channel: the stream maps
``<type>.<tenant>.<channel>`` to a stored subject ending in ``.<0..SEND_PARTITIONS-1>``
(``partition_transform``), and each partition has its own consumer (``partition_filter``).
"""

from __future__ import annotations

import re
from typing import Final

from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import InvalidSubjectToken
from zapflow.contracts.registry import model_for
from zapflow.contracts.types import SUBJECT_TOKEN_PATTERN

INBOUND_WEBHOOK_RECEIVED_V1: Final = "zf.inbound.webhook_received.v1"
MESSAGES_RECEIVED_V1: Final = "zf.messages.received.v1"
MESSAGES_OUTBOUND_RECORDED_V1: Final = "zf.messages.outbound_recorded.v1"
MESSAGES_STATUS_CHANGED_V1: Final = "zf.messages.status_changed.v1"
MESSAGES_EDITED_V1: Final = "zf.messages.edited.v1"
MESSAGES_REVOKED_V1: Final = "zf.messages.revoked.v1"
CONTACTS_UPDATED_V1: Final = "zf.contacts.updated.v1"
CONSENT_OPTED_OUT_V1: Final = "zf.consent.opted_out.v1"
CONSENT_OPTED_IN_V1: Final = "zf.consent.opted_in.v1"
COMPLIANCE_CHANGE_CONSENT_V1: Final = "zf.compliance.change_consent.v1"
CONVERSATIONS_ASSIGNED_V1: Final = "zf.conversations.assigned.v1"
CONVERSATIONS_STATUS_CHANGED_V1: Final = "zf.conversations.status_changed.v1"
INGEST_ASSIGN_CONVERSATION_V1: Final = "zf.ingest.assign_conversation.v1"
INGEST_CHANGE_CONVERSATION_STATUS_V1: Final = "zf.ingest.change_conversation_status.v1"
SENDING_REQUESTED_V1: Final = "zf.sending.requested.v1"
SENDING_VETOED_V1: Final = "zf.sending.vetoed.v1"
SENDING_DEFERRED_V1: Final = "zf.sending.deferred.v1"
SENDING_SENT_V1: Final = "zf.sending.sent.v1"
SENDING_FAILED_V1: Final = "zf.sending.failed.v1"
SENDER_SEND_APPROVED_V1: Final = "zf.sender.send_approved.v1"
CAMPAIGNS_CREATED_V1: Final = "zf.campaigns.created.v1"
CAMPAIGNS_LAUNCHED_V1: Final = "zf.campaigns.launched.v1"
CAMPAIGNS_PAUSED_V1: Final = "zf.campaigns.paused.v1"
CAMPAIGNS_RESUMED_V1: Final = "zf.campaigns.resumed.v1"
CAMPAIGNS_CANCELLED_V1: Final = "zf.campaigns.cancelled.v1"
CAMPAIGNS_COMPLETED_V1: Final = "zf.campaigns.completed.v1"
CAMPAIGNS_PROGRESS_V1: Final = "zf.campaigns.progress.v1"
CAMPAIGNS_COMMAND_REJECTED_V1: Final = "zf.campaigns.command_rejected.v1"
CAMPAIGNS_RECIPIENT_STATE_CHANGED_V1: Final = "zf.campaigns.recipient_state_changed.v1"
DISPATCHER_CREATE_CAMPAIGN_V1: Final = "zf.dispatcher.create_campaign.v1"
DISPATCHER_LAUNCH_CAMPAIGN_V1: Final = "zf.dispatcher.launch_campaign.v1"
DISPATCHER_PAUSE_CAMPAIGN_V1: Final = "zf.dispatcher.pause_campaign.v1"
DISPATCHER_RESUME_CAMPAIGN_V1: Final = "zf.dispatcher.resume_campaign.v1"
DISPATCHER_CANCEL_CAMPAIGN_V1: Final = "zf.dispatcher.cancel_campaign.v1"
CHANNELS_REGISTERED_V1: Final = "zf.channels.registered.v1"
CHANNELS_UPDATED_V1: Final = "zf.channels.updated.v1"
CHANNELS_DISABLED_V1: Final = "zf.channels.disabled.v1"
DLQ_DEAD_LETTERED_V1: Final = "zf.dlq.dead_lettered.v1"
DLQ_REPLAYED_V1: Final = "zf.dlq.replayed.v1"

SEND_PARTITIONS: Final = 16
"""Partitions of channel-keyed send subjects; changing it needs a stream migration."""

ADVISORY_MAX_DELIVERIES: Final = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"
"""Core-NATS advisory JetStream publishes when a message ran out of deliveries."""


def max_deliveries_advisory(stream: str, durable: str) -> str:
    """``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<durable>``: the advisory of one
    consumer (each service subscribes to those of its own consumers)."""
    return f"{ADVISORY_MAX_DELIVERIES.removesuffix('>')}{stream}.{durable}"


_TOKEN: Final = re.compile(SUBJECT_TOKEN_PATTERN)


def token(value: str) -> str:
    """``value`` if it is safe as one subject token (lowercase, digits, ``-``, ``_``)."""
    if not _TOKEN.fullmatch(value):
        raise InvalidSubjectToken(value)
    return value


def subject(type_name: str, *tokens: str) -> str:
    """``<type>.<token>…``, each token checked; e.g. ``subject(MESSAGES_RECEIVED_V1, tenant)``."""
    return ".".join((type_name, *(token(t) for t in tokens)))


def _resolve(event: Event, path: str) -> str:
    value: object = event
    for name in path.split("."):
        value = getattr(value, name)
    if not isinstance(value, str):
        raise TypeError(f"subject field {path!r} of {event.type} is not a string")
    return value


def subject_for(event: Event) -> str:
    """The subject to publish ``event`` on, from its ``type`` and ``subject_fields``."""
    return subject(event.type, *(_resolve(event, path) for path in event.subject_fields))


def subject_params(model: type[Event]) -> tuple[str, ...]:
    """Names of the tokens after the version, e.g. ``("tenant", "channel")``."""
    return tuple(path.rsplit(".", 1)[-1].removesuffix("_id") for path in model.subject_fields)


def send_requested(tenant: str, channel: str) -> str:
    """``zf.sending.requested.v1.<tenant>.<channel>``."""
    return subject(SENDING_REQUESTED_V1, tenant, channel)


def send_approved(tenant: str, channel: str) -> str:
    """``zf.sender.send_approved.v1.<tenant>.<channel>``."""
    return subject(SENDER_SEND_APPROVED_V1, tenant, channel)


def webhook_received(tenant: str, channel: str) -> str:
    """``zf.inbound.webhook_received.v1.<tenant>.<channel>``."""
    return subject(INBOUND_WEBHOOK_RECEIVED_V1, tenant, channel)


def dead_letter(tenant: str, service: str) -> str:
    """``zf.dlq.dead_lettered.v1.<tenant>.<service>``."""
    return subject(DLQ_DEAD_LETTERED_V1, tenant, service)


def every(type_name: str) -> str:
    """Filter for one type, every tenant (and partition): ``<type>.>``."""
    return f"{type_name}.>"


def of_tenant(type_name: str, tenant: str) -> str:
    """Filter for one type of one tenant (every channel, if the subject has one)."""
    base = subject(type_name, tenant)
    return base if len(model_for(type_name).subject_fields) == 1 else f"{base}.>"


def all_versions(type_name: str) -> str:
    """Filter spanning every major version of a type, for migrations: ``zf.<ctx>.<event>.*.>``."""
    context_event, _, _version = type_name.rpartition(".")
    return f"{context_event}.*.>"


def context(name: str) -> str:
    """Filter for everything of a context: ``zf.<context>.>``."""
    return f"zf.{token(name)}.>"


def partition_transform(type_name: str, partitions: int = SEND_PARTITIONS) -> tuple[str, str]:
    """Stream subject transform (source, destination) adding a partition token hashed from
    tenant and channel: ``<type>.<tenant>.<channel>`` -> ``<type>.<tenant>.<channel>.<p>``."""
    destination = f"{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{partition({partitions},1,2)}}}}"
    return f"{type_name}.*.*", f"{type_name}.{destination}"


def partition_filter(type_name: str, partition: int) -> str:
    """Filter for one partition of a partitioned type: ``<type>.*.*.<p>``."""
    return f"{type_name}.*.*.{partition}"


def matches(pattern: str, subject_: str) -> bool:
    """True if the concrete ``subject_`` matches ``pattern`` (``*`` one token, ``>`` the rest)."""
    want, have = pattern.split("."), subject_.split(".")
    for i, tok in enumerate(want):
        if tok == ">":
            return len(have) > i
        if i >= len(have) or (tok != "*" and tok != have[i]):
            return False
    return len(have) == len(want)


def overlaps(a: str, b: str) -> bool:
    """True if some subject matches both filters (forbidden between work-queue consumers)."""
    left, right = a.split("."), b.split(".")
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else None
        y = right[i] if i < len(right) else None
        if x is None or y is None:
            return False
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return True
