"""``zapflow audit``: did every send reach the provider exactly once, in order, within pace?

Zapflow's side comes from JetStream: ``ZF_SENDING`` holds ``send.requested`` (request order per
recipient) and the ``sent`` / ``failed`` / ``vetoed`` outcomes, read in stream order with an
ephemeral pull consumer (no acks, in memory) up to the last message stored when it starts; channel
paces come from the last ``channels.registered`` / ``channels.updated`` event in ``ZF_CHANNELS``
(or ``--rate`` / ``--burst``). The provider's side is the simulator's audit log (``--log FILE``, or
``GET <simulator>/_audit``). ``zapflow.simulator.audit`` compares them per channel.

Exit status: 0 all good; 1 something lost, duplicated, out of order, or over pace (unless
``--ignore-pace``); 2 a source could not be read.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Final

import httpx
import nats
import typer
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from zapflow.cli import topology
from zapflow.contracts import headers, streams, subjects
from zapflow.contracts.channels.v1 import ChannelRegistered, ChannelUpdated
from zapflow.contracts.envelope import Event
from zapflow.contracts.errors import UnknownEventType
from zapflow.contracts.registry import parse_event
from zapflow.runtime.broker import server_urls
from zapflow.simulator.audit import AuditReport, ChannelAudit, Pace, audit
from zapflow.simulator.auditlog import AuditRecord, parse_lines, read_file
from zapflow.simulator.expected import expected_sends

DEFAULT_SIMULATOR_URL: Final = "http://127.0.0.1:8086"
SENDING_TYPES: Final = (
    subjects.SENDING_REQUESTED_V1,
    subjects.SENDING_SENT_V1,
    subjects.SENDING_FAILED_V1,
    subjects.SENDING_VETOED_V1,
)
CHANNEL_TYPES: Final = (subjects.CHANNELS_REGISTERED_V1, subjects.CHANNELS_UPDATED_V1)
_FETCH: Final = 256

app = typer.Typer(no_args_is_help=False)


class SourceError(Exception):
    """A side of the audit could not be read."""


def _filters(types: tuple[str, ...], tenant: str | None) -> list[str]:
    return [subjects.of_tenant(t, tenant) if tenant else subjects.every(t) for t in types]


def _decode(subject: str, hdrs: dict[str, str] | None, data: bytes) -> Event | None:
    type_name = (hdrs or {}).get(headers.ZF_TYPE) or ".".join(subject.split(".")[:4])
    try:
        return parse_event(type_name, data)
    except (UnknownEventType, ValidationError):
        return None  # not an event this audit reads (or not parseable): skipped


async def _quiet(exc: Exception) -> None:
    """Connection errors surface as the exception ``connect`` raises; don't log each retry."""


async def read_events(nats_url: str, stream: str, filters: list[str]) -> list[Event]:
    """Every event stored in ``stream`` under ``filters`` when called, in stream order."""
    nc = await nats.connect(
        server_urls(nats_url),
        connect_timeout=3,
        max_reconnect_attempts=1,  # nats-py retries forever with 0
        reconnect_time_wait=0.2,
        error_cb=_quiet,
    )
    try:
        js = nc.jetstream()
        config = ConsumerConfig(
            filter_subjects=filters,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
        )
        sub = await js.pull_subscribe(filters[0], stream=stream, config=config)
        remaining = (await sub.consumer_info()).num_pending or 0
        events: list[Event] = []
        while remaining > 0:
            for msg in await sub.fetch(min(remaining, _FETCH), timeout=5):
                remaining -= 1
                if (event := _decode(msg.subject, msg.headers, msg.data)) is not None:
                    events.append(event)
        await sub.unsubscribe()
        return events
    finally:
        await nc.close()


async def channel_paces(nats_url: str, tenant: str | None) -> dict[str, Pace]:
    """The pace of every channel in ``ZF_CHANNELS`` (the last settings event of each)."""
    try:
        events = await read_events(
            nats_url, streams.ZF_CHANNELS.name, _filters(CHANNEL_TYPES, tenant)
        )
    except NotFoundError:
        return {}
    paces: dict[str, Pace] = {}
    for event in events:
        if isinstance(event, ChannelRegistered | ChannelUpdated):
            pace = event.channel.pace
            paces[event.channel.channel_id] = Pace(pace.rate_per_second, pace.burst)
    return paces


def load_records(log: Path | None, simulator_url: str) -> list[AuditRecord]:
    """The simulator's audit records: from the file, else from ``GET <url>/_audit``."""
    try:
        if log is not None:
            return read_file(log)
        response = httpx.get(f"{simulator_url.rstrip('/')}/_audit", timeout=30.0)
        response.raise_for_status()
        return parse_lines(response.text.splitlines())
    except (OSError, httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"cannot read the audit log: {type(exc).__name__}: {exc}") from exc


async def collect(
    nats_url: str,
    records: list[AuditRecord],
    *,
    tenant: str | None = None,
    channels: frozenset[str] | None = None,
    pace: Pace | None = None,
    window_s: float = 1.0,
) -> AuditReport:
    """Read Zapflow's side from JetStream and audit ``records`` against it."""
    try:
        events = await read_events(
            nats_url, streams.ZF_SENDING.name, _filters(SENDING_TYPES, tenant)
        )
        paces = await channel_paces(nats_url, tenant) if pace is None else {}
    except (OSError, TimeoutError, NatsError) as exc:
        raise SourceError(f"cannot read JetStream at {nats_url}: {type(exc).__name__}") from exc
    expected = expected_sends(events, tenant_id=tenant, channels=channels)
    scope = channels
    if scope is None and tenant is not None:
        scope = frozenset(e.channel_id for e in expected)
    if scope is not None:
        records = [r for r in records if r.channel_id in scope]
    if pace is not None:
        seen = {e.channel_id for e in expected} | {r.channel_id for r in records}
        paces = dict.fromkeys(seen, pace)
    return audit(expected, records, paces=paces, window_s=window_s)


def render(report: AuditReport, *, details: bool = False) -> list[str]:
    """The report as table lines."""
    per = f"MAX/{report.window_s:g}S"
    lines = [
        f"{'CHANNEL':<24} {'REQUESTED':>9} {'SENT':>7} {'ACCEPTED':>8} {'LOST':>6} "
        f"{'DUPLICATED':>10} {'OUT_OF_ORDER':>12} {'UNMATCHED':>9} {per:>7} {'PACE':>6}"
    ]
    for c in report.channels:
        limit = "-" if c.pace_limit is None else str(c.pace_limit)
        flag = "  over pace" if c.over_pace else ""
        lines.append(
            f"{c.channel_id:<24} {c.requested:>9} {c.recorded_sent:>7} {c.accepted:>8} "
            f"{c.lost:>6} {c.duplicated:>10} {c.out_of_order:>12} {c.unmatched:>9} "
            f"{c.max_per_window:>7} {limit:>6}{flag}"
        )
    for c in report.channels:
        lines.extend(_notes(c, details=details))
    return lines


def _notes(c: ChannelAudit, *, details: bool) -> list[str]:
    notes = []
    if c.lost_after_sent:
        notes.append(f"{c.channel_id}: {c.lost_after_sent} lost sends were recorded as sent")
    if c.unmatched:
        notes.append(
            f"{c.channel_id}: {c.unmatched} accepted sends match no request (a resend without "
            "biz_opaque_callback_data, or a send from outside Zapflow)"
        )
    if details:
        for label, ids in (
            ("lost", c.lost_ids),
            ("duplicated", c.duplicated_ids),
            ("out of order", c.out_of_order_ids),
        ):
            if ids:
                notes.append(f"{c.channel_id}: {label}: {', '.join(ids)}")
    return notes


def _as_json(report: AuditReport) -> str:
    doc = asdict(report)
    for channel, c in zip(doc["channels"], report.channels, strict=True):
        channel |= {"ok": c.ok, "over_pace": c.over_pace}
    return json.dumps(doc | {"ok": report.ok, "over_pace": report.over_pace}, indent=2)


HELP: Final = (
    "Compare what Zapflow recorded as sent with what the provider accepted.\n\n"
    "Per channel: requested, recorded as sent, accepted by the provider, lost, duplicated, "
    "out of order, and the most sends in any window against the channel's pace "
    "(rate * window + burst). Exit status 1 when anything is lost, duplicated, out of order "
    "or over pace (see --ignore-pace), 2 when a source cannot be read.\n\n"
    "The provider side is the simulator's audit log. With a real provider, the same comparison "
    "can be made from its status webhooks: every accepted message gets a 'sent' status carrying "
    "its id and biz_opaque_callback_data (Zapflow's message id), so the stored statuses play "
    "the part of the audit log."
)


@app.callback(invoke_without_command=True, help=HELP)
def audit_command(
    log: Annotated[
        Path | None,
        typer.Option(
            "--log", dir_okay=False, help="The simulator's audit log file (else GET /_audit)."
        ),
    ] = None,
    simulator_url: Annotated[
        str,
        typer.Option(
            "--simulator-url", envvar="ZF_SIMULATOR_URL", help="Simulator base URL, when no --log."
        ),
    ] = DEFAULT_SIMULATOR_URL,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's sends.")] = None,
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="Only these channels (repeatable).")
    ] = None,
    nats_url: Annotated[str | None, typer.Option(help="Default: $NATS_URL or local.")] = None,
    rate: Annotated[float | None, typer.Option(help="Pace rate/s for every channel.")] = None,
    burst: Annotated[int, typer.Option(help="Pace burst, with --rate.")] = 1,
    window: Annotated[float, typer.Option(help="Window of the max-per-window count, s.")] = 1.0,
    ignore_pace: Annotated[bool, typer.Option(help="Exit 0 even when over pace.")] = False,
    details: Annotated[bool, typer.Option(help="List sample message ids per problem.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Print the audit table; exit 1 on a problem, 2 when a source cannot be read."""
    try:
        records = load_records(log, simulator_url)
        report = asyncio.run(
            collect(
                nats_url or topology.nats_url(),
                records,
                tenant=tenant,
                channels=frozenset(channel) if channel else None,
                pace=Pace(rate, burst) if rate is not None else None,
                window_s=window,
            )
        )
    except SourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(_as_json(report) if as_json else "\n".join(render(report, details=details)))
    failed = not report.ok or (report.over_pace and not ignore_pace)
    raise typer.Exit(1 if failed else 0)
