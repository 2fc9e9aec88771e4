"""Prometheus metrics shared by the runtime; services add their own next to their code."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONSUMED = Counter(
    "zf_consumer_messages_total",
    "Messages handled by a durable consumer, by outcome.",
    ["consumer", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "zf_consumer_handle_seconds",
    "Time spent handling one message.",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SECONDS = Histogram(
    "zf_consumer_batch_seconds",
    "Time spent handling one fetched batch with a batch handler.",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PUBLISHED = Counter("zf_published_total", "Events published to JetStream.", ["type"])
READY = Gauge("zf_ready", "1 when the service's dependencies are reachable.")
QUERIES_SERVED = Counter(
    "zf_queries_served_total",
    "Request-reply queries answered, by subject and outcome.",
    ["subject", "outcome"],
)
WAITING = Gauge(
    "zf_consumer_waiting",
    "Messages held in place while an infrastructure error (database, NATS) is waited out.",
    ["consumer"],
)
PARTITIONS_OWNED = Gauge(
    "zf_partitions_owned", "Partitions this replica holds a lease on.", ["group"]
)
TASK_RESTARTS = Counter(
    "zf_task_restarts_total", "Supervised tasks restarted after a crash.", ["task"]
)
