"""Every JetStream stream and durable consumer of Zapflow, as ``StreamSpec``/``ConsumerSpec`` data.

Retention, chosen per stream:

- **limits** for event streams. Several services consume them, each at its own pace, and keeping
  history (``max_age_s``) lets a new consumer or a fixed bug replay it. Send requests are here too:
  both compliance and ingest read them, so a work queue would not do.
- **workqueue** for command streams with exactly one consumer group (``ZF_INGEST``,
  ``ZF_COMPLIANCE``, ``ZF_DISPATCHER``, ``ZF_SENDER``): an acked command is deleted, so the stream
  size *is* the backlog (what sender autoscaling watches), and nothing published before the consumer
  exists is lost. NATS rejects overlapping consumers on a work queue; the partition consumers of
  ``ZF_SENDER`` filter disjoint partition tokens.
- **interest** is not used: it drops messages published while a consumer does not exist yet, which
  start-up order cannot rule out.

Ordering: ``send_requested`` and ``send_approved`` are stored with a partition token hashed from
(tenant, channel) and consumed one partition per consumer; with one replica at a time on each
partition (the owning service holds a lease), sends to a channel keep their requested order.

Limits: every stream has a ``max_age_s`` and a ``max_bytes`` (see ``StreamSpec``). Event streams
discard their **oldest** messages when full: they keep history that every consumer has normally
read long before, and refusing new events would stop the whole system once history filled up.
Work queues, ``ZF_CHANNELS`` (current channel settings) and ``ZF_DLQ`` refuse **new** messages
when full: what they hold is unfinished work or the only copy of something, so the publisher gets
an error and retries instead of something disappearing silently. The sizes here fit a laptop;
production raises them per stream with ``ZF_STREAM_MAX_BYTES`` (``deploy/k8s/overlays/prod``).
The table with the reasons is in ``deploy/README.md`` ("Retention").

Durable consumers are declared only for handlers that read them: the dispatcher and realtime
have none yet, nor does ingest for ``ZF_INGEST`` commands, which nothing publishes today. A
work queue without a consumer keeps what is published to it until one exists.
"""

from __future__ import annotations

from typing import Final

from zapflow.contracts import subjects as s
from zapflow.contracts.specs import SHARED as SHARED
from zapflow.contracts.specs import ConsumerSpec as ConsumerSpec
from zapflow.contracts.specs import (
    GiB,
    MiB,
    command_stream,
    events_stream,
    partitioned_consumers,
)
from zapflow.contracts.specs import ObjectStoreSpec as ObjectStoreSpec
from zapflow.contracts.specs import StreamSpec as StreamSpec

MINUTE: Final = 60.0
DAY: Final = 86_400.0


ZF_INBOUND: Final = events_stream(
    "inbound",
    "gateway",
    "Raw provider webhooks; kept a week so ingest can re-parse them after a fix.",
    max_age_s=7 * DAY,
    max_bytes=1 * GiB,
)
INBOUND_BODIES: Final = ObjectStoreSpec(
    bucket="zf_inbound_bodies",
    # a day longer than ZF_INBOUND keeps its events (7 days): a body never expires before its
    # event, so ingest can re-parse any stored webhook (a test holds the two together)
    max_age_s=8 * DAY,
    max_bytes=1 * GiB,
    owner="gateway",
    readers=("ingest",),
    description="Webhook bodies too large to travel inline in ZF_INBOUND events (claim check): "
    "one object per WebhookReceived.body_ref, written by the gateway before the event.",
)
ZF_MESSAGES: Final = events_stream(
    "messages",
    "ingest",
    "Timeline: received, outbound recorded, status changed, edited, revoked.",
    max_bytes=512 * MiB,
)
ZF_CONTACTS: Final = events_stream(
    "contacts", "ingest", "Contacts created or changed.", max_bytes=128 * MiB
)
ZF_CONVERSATIONS: Final = events_stream(
    "conversations", "ingest", "Conversation assignment and status.", max_bytes=128 * MiB
)
ZF_CONSENT: Final = events_stream(
    "consent", "compliance", "Opt-ins and opt-outs.", max_bytes=64 * MiB
)
ZF_SENDING: Final = events_stream(
    "sending",
    "compliance",
    "Send requests (partitioned by channel), vetoes, deferrals and provider outcomes.",
    max_age_s=14 * DAY,
    max_bytes=512 * MiB,
    duplicate_window_s=10 * MINUTE,
    subject_transform=s.partition_transform(s.SENDING_REQUESTED_V1),
)
ZF_SENDER: Final = StreamSpec(
    name="ZF_SENDER",
    subjects=(f"{s.SENDER_SEND_APPROVED_V1}.*.*",),
    retention="workqueue",
    duplicate_window_s=10 * MINUTE,
    # an approval is a decision taken at one moment (24 h window, quiet hours, caps): one that
    # waited a week is stale, and a week without sending is an outage to be handled by hand
    max_age_s=7 * DAY,
    max_bytes=256 * MiB,
    discard="new",
    owner="sender",
    subject_transform=s.partition_transform(s.SENDER_SEND_APPROVED_V1),
    description="Approved sends, partitioned by channel; the backlog drives sender autoscaling.",
)
ZF_CAMPAIGNS: Final = events_stream(
    "campaigns",
    "dispatcher",
    "Campaign lifecycle, progress and recipient states.",
    max_bytes=256 * MiB,
)
ZF_CHANNELS: Final = events_stream(
    "channels",
    "gateway",
    "Channel settings: the last event per channel and kind, kept forever.",
    max_age_s=None,
    max_bytes=16 * MiB,
    # dropping the oldest would drop a channel whose settings did not change lately
    discard="new",
    max_msgs_per_subject=1,
)
ZF_INGEST: Final = command_stream("ingest", "ingest", "Commands to ingest (conversations).")
ZF_COMPLIANCE: Final = command_stream(
    "compliance", "compliance", "Commands to compliance (consent)."
)
ZF_DISPATCHER: Final = command_stream("dispatcher", "dispatcher", "Commands to the dispatcher.")
ZF_DLQ: Final = events_stream(
    "dlq",
    SHARED,
    "Dead letters of every service, kept a month for inspection and replay.",
    max_bytes=256 * MiB,
    # the last record of what a consumer gave up on: a full DLQ refuses the next record (the
    # consumer fails loudly, the message stays in its stream) rather than drop an older one
    discard="new",
)

ALL_OBJECT_STORES: Final = (INBOUND_BODIES,)
"""Every object store bucket (streams ``OBJ_<bucket>``)."""

ALL_STREAMS: Final = (
    ZF_INBOUND,
    ZF_MESSAGES,
    ZF_CONTACTS,
    ZF_CONVERSATIONS,
    ZF_CONSENT,
    ZF_SENDING,
    ZF_SENDER,
    ZF_CAMPAIGNS,
    ZF_CHANNELS,
    ZF_INGEST,
    ZF_COMPLIANCE,
    ZF_DISPATCHER,
    ZF_DLQ,
)


INGEST_RAW: Final = ConsumerSpec(
    durable="ingest-raw",
    stream=ZF_INBOUND.name,
    owner="ingest",
    filter_subjects=(s.every(s.INBOUND_WEBHOOK_RECEIVED_V1),),
    backoff_s=(30, 60, 120, 300),
    description="Parse raw webhooks into contacts, conversations, messages and statuses.",
)
INGEST_OUTBOUND: Final = ConsumerSpec(
    durable="ingest-outbound",
    stream=ZF_SENDING.name,
    owner="ingest",
    filter_subjects=tuple(
        s.every(t)
        for t in (
            s.SENDING_REQUESTED_V1,
            s.SENDING_VETOED_V1,
            s.SENDING_SENT_V1,
            s.SENDING_FAILED_V1,
        )
    ),
    description="Record outbound messages in timelines and turn send outcomes into statuses.",
)
COMPLIANCE_REQUESTS: Final = partitioned_consumers(
    "compliance-requests",
    ZF_SENDING,
    s.SENDING_REQUESTED_V1,
    "compliance",
    "Approve, veto or defer send requests in order per channel",
    max_ack_pending=200,
)
COMPLIANCE_INBOUND: Final = ConsumerSpec(
    durable="compliance-inbound",
    stream=ZF_MESSAGES.name,
    owner="compliance",
    filter_subjects=(s.every(s.MESSAGES_RECEIVED_V1),),
    description="Open 24 h service windows and detect opt-in/opt-out keywords.",
)
COMPLIANCE_COMMANDS: Final = ConsumerSpec(
    durable="compliance-commands",
    stream=ZF_COMPLIANCE.name,
    owner="compliance",
    filter_subjects=ZF_COMPLIANCE.subjects,
    description="Execute consent commands.",
)
COMPLIANCE_CHANNELS: Final = ConsumerSpec(
    durable="compliance-channels",
    stream=ZF_CHANNELS.name,
    owner="compliance",
    filter_subjects=ZF_CHANNELS.subjects,
    description="Keep channel policies and daily caps.",
)
COMPLIANCE_CAMPAIGNS: Final = ConsumerSpec(
    durable="compliance-campaigns",
    stream=ZF_CAMPAIGNS.name,
    owner="compliance",
    filter_subjects=(s.every(s.CAMPAIGNS_CANCELLED_V1),),
    description="Veto requests of cancelled campaigns still in flight.",
)

SENDER_APPROVED: Final = partitioned_consumers(
    "sender-approved",
    ZF_SENDER,
    s.SENDER_SEND_APPROVED_V1,
    "sender",
    "Pace and send approved messages to the provider",
    ack_wait_s=60.0,
    # what one partition's worker may hold: messages waiting for their recipient's lane, for
    # pace, backoff or a daily cap count too, so this bounds the lanes working at once
    max_ack_pending=1000,
)
# No durable on ZF_CHANNELS for the sender: every replica needs every channel's settings, so each
# reads the stream with an ordered consumer of its own; a shared durable would split them.
# No durable on ZF_MESSAGES for the sender either: while a send is in doubt, the replica working it
# reads zf.messages.status_changed.v1.<tenant> with an ephemeral ordered consumer (by start time)
# for a status that names the message (client_message_id), and deletes it when nothing is in doubt.

ALL_CONSUMERS: Final = (
    INGEST_RAW,
    INGEST_OUTBOUND,
    *COMPLIANCE_REQUESTS,
    COMPLIANCE_INBOUND,
    COMPLIANCE_COMMANDS,
    COMPLIANCE_CHANNELS,
    COMPLIANCE_CAMPAIGNS,
    *SENDER_APPROVED,
)


def stream_named(name: str) -> StreamSpec:
    """The stream declared with ``name``; raises ``KeyError`` if none is."""
    for stream in ALL_STREAMS:
        if stream.name == name:
            return stream
    raise KeyError(name)


def streams_owned_by(service: str, *, include_shared: bool = True) -> tuple[StreamSpec, ...]:
    """Streams ``service`` declares at start-up: its own, plus shared ones (the DLQ) by default."""
    owners = {service, SHARED} if include_shared else {service}
    return tuple(stream for stream in ALL_STREAMS if stream.owner in owners)


def consumers_owned_by(service: str) -> tuple[ConsumerSpec, ...]:
    """Durable consumers ``service`` declares and pulls from."""
    return tuple(consumer for consumer in ALL_CONSUMERS if consumer.owner == service)
