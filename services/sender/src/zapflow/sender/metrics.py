"""Prometheus metrics of the sender (served on ``/metrics`` with the runtime's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SENDS = Counter(
    "zf_sender_sends_total",
    "Messages that reached an outcome: accepted, failed, exhausted; in doubt: in_doubt_sent "
    "(a provider status named it), in_doubt_resent, in_doubt (dead-lettered).",
    ["outcome"],
)
RETRIES = Counter(
    "zf_sender_retries_total",
    "Provider calls retried, by kind (transient, channel_rate_limit, recipient_rate_limit).",
    ["kind"],
)
PROVIDER_SECONDS = Histogram(
    "zf_sender_provider_seconds",
    "Duration of one provider call.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10),
)
PACE_FACTOR = Gauge(
    "zf_sender_pace_factor",
    "Share of its configured pace a channel currently uses (AIMD), per owned channel.",
    ["tenant", "channel"],
)
IN_DOUBT_WAITING = Gauge(
    "zf_sender_in_doubt_waiting",
    "In-doubt sends waiting for a provider status that names them (their lanes wait too).",
)
PARKED = Gauge(
    "zf_sender_parked_messages",
    "Approved sends a channel has waiting in parked_sends (over its memory budget), per owned "
    "channel.",
    ["tenant", "channel"],
)
PARKED_TOTAL = Counter(
    "zf_sender_parked_total", "Approved sends moved out of memory into parked_sends."
)
HELD = Gauge("zf_sender_held_messages", "Approved sends fetched and not yet acknowledged.")
DEAD_LETTERED = Counter("zf_sender_dead_lettered_total", "Messages sent to the DLQ.")
