"""``zapflow dlq …``: list, inspect and replay dead letters (stream ``ZF_DLQ``).

A dead letter (``DeadLettered``) keeps the message a service gave up on byte for byte, with the
error and the attempt count. ``replay`` republishes the original payload to its original subject
— without the partition token a partitioned stream added when storing it — with its original
headers, a ``Nats-Msg-Id`` derived from the dead letter id (replaying twice within the stream's
duplicate window publishes once) and ``Zf-Replay-Of`` naming the dead letter, then records a
``DeadLetterReplayed``. ``list`` marks the dead letters already replayed; ``replay --all`` skips
them.

Payloads may contain message bodies and phone numbers: ``show`` prints one only with
``--payload``.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Final, TypeVar
from uuid import UUID, uuid5

import nats
import typer
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from zapflow.cli import topology
from zapflow.contracts import headers as h
from zapflow.contracts.common import Actor, ActorKind
from zapflow.contracts.dlq.v1 import DeadLettered, DeadLetterReplayed
from zapflow.contracts.errors import UnknownEventType
from zapflow.contracts.registry import parse_event
from zapflow.contracts.streams import ZF_DLQ, stream_named
from zapflow.contracts.subjects import matches, subject_for
from zapflow.runtime.broker import Publisher, server_urls

REPLAY_NAMESPACE: Final = UUID("0b6f3f5c-9f0e-4d43-8a7d-2f4a3e9c51d7")
"""Namespace of replay ids: the same dead letter always replays under the same ids."""

T = TypeVar("T")

app = typer.Typer(help="Dead letters: list, inspect and replay.", no_args_is_help=True)


@dataclass
class DeadLetterLog:
    """Everything in ``ZF_DLQ``: dead letters in stream order and the replays of each."""

    letters: list[DeadLettered] = field(default_factory=list)
    replays: dict[UUID, list[DeadLetterReplayed]] = field(default_factory=dict)

    def find(self, prefix: str) -> DeadLettered:
        """The dead letter whose id is or starts with ``prefix``."""
        found = [d for d in self.letters if str(d.id).startswith(prefix.lower())]
        if len(found) != 1:
            raise LookupError(
                f"no dead letter {prefix!r}" if not found else f"{prefix!r} is ambiguous"
            )
        return found[0]

    def select(self, *, service: str | None, tenant: str | None) -> list[DeadLettered]:
        return [
            d
            for d in self.letters
            if (service is None or d.service == service)
            and (tenant is None or d.tenant_id == tenant)
        ]


async def read_log(js: JetStreamContext, *, wait_s: float = 5.0) -> DeadLetterLog:
    """Read ``ZF_DLQ`` from the start up to its last message at the time of the call."""
    log = DeadLetterLog()
    last = (await js.stream_info(ZF_DLQ.name)).state.last_seq
    if last == 0:
        return log
    sub = await js.subscribe(
        ZF_DLQ.subjects[0],
        stream=ZF_DLQ.name,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        while True:
            msg = await sub.next_msg(timeout=wait_s)
            _add(log, msg.headers, msg.data)
            if msg.metadata.sequence.stream >= last:
                return log
    finally:
        await sub.unsubscribe()


def _add(log: DeadLetterLog, headers: dict[str, str] | None, data: bytes) -> None:
    try:
        event = parse_event((headers or {}).get(h.ZF_TYPE, ""), data)
    except (UnknownEventType, ValidationError):
        return
    if isinstance(event, DeadLettered):
        log.letters.append(event)
    elif isinstance(event, DeadLetterReplayed):
        log.replays.setdefault(event.dead_letter_id, []).append(event)


def republish_subject(letter: DeadLettered) -> str:
    """Where the original message must go again: its subject as published, i.e. without the
    token a stream's subject transform appended when storing it (the send partitions)."""
    subject = letter.original_subject
    if letter.original_stream is None:
        return subject
    try:
        stream = stream_named(letter.original_stream)
    except KeyError:
        return subject
    if any(matches(f, subject) for f in stream.subjects) or stream.subject_transform is None:
        return subject
    source = stream.subject_transform[0]
    published = ".".join(subject.split(".")[: len(source.split("."))])
    return published if matches(source, published) else subject


def replay_msg_id(letter: DeadLettered) -> str:
    return f"replay:{letter.id}"


async def replay(js: JetStreamContext, letter: DeadLettered, actor: Actor) -> DeadLetterReplayed:
    """Republish ``letter``'s payload, then record the replay (both idempotent)."""
    subject = republish_subject(letter)
    msg_id = replay_msg_id(letter)
    headers = {k: v for k, v in letter.original_headers.items() if k != h.NATS_MSG_ID}
    headers |= {h.NATS_MSG_ID: msg_id, h.ZF_REPLAY_OF: str(letter.id)}
    await js.publish(subject, base64.b64decode(letter.original_payload_b64), headers=headers)
    event = DeadLetterReplayed(
        id=uuid5(REPLAY_NAMESPACE, str(letter.id)),
        tenant_id=letter.tenant_id,
        correlation_id=letter.correlation_id,
        causation_id=letter.id,
        dead_letter_id=letter.id,
        service=letter.service,
        republished_subject=subject,
        republished_msg_id=msg_id,
        replayed_by=actor,
    )
    await Publisher(js)(subject_for(event), event)
    return event


def operator() -> Actor:
    """Who replays: the operator's login on this machine."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor(kind=ActorKind.OPERATOR, id=f"cli:{name}"[:128])


# -- commands -------------------------------------------------------------------------------

ServiceOption = Annotated[
    str | None, typer.Option("--service", help="Only this service's dead letters.")
]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")]


@app.callback()
def dlq() -> None:
    """Messages services gave up on, kept in ZF_DLQ for a month."""


@app.command("list")
def list_(
    service: ServiceOption = None,
    tenant: TenantOption = None,
    limit: Annotated[int, typer.Option(help="Show the newest N.")] = 50,
) -> None:
    """Dead letters, oldest first: id, time, service, tenant, subject, error, attempts."""
    log = asyncio.run(_with_js(read_log))
    letters = log.select(service=service, tenant=tenant)[-limit:]
    typer.echo(
        f"{'ID':<36}  {'FAILED AT':<19}  {'SERVICE':<10}  {'TENANT':<16}  "
        f"{'ATTEMPTS':>8}  REPLAYED  ERROR / SUBJECT"
    )
    for d in letters:
        replayed = "yes" if d.id in log.replays else "-"
        typer.echo(
            f"{d.id!s:<36}  {d.failed_at:%Y-%m-%d %H:%M:%S}  {d.service:<10}  "
            f"{d.tenant_id[:16]:<16}  {d.delivery_count:>8}  {replayed:<8}  "
            f"{_short_class(d.error_class)} on {d.original_subject}"
        )
    typer.echo(f"{len(letters)} of {len(log.letters)} dead letters")


@app.command()
def show(
    dead_letter_id: Annotated[str, typer.Argument(help="Id, or a unique prefix of it.")],
    payload: Annotated[
        bool,
        typer.Option("--payload", help="Also print the payload (may hold bodies and phones)."),
    ] = False,
) -> None:
    """One dead letter as JSON, with its replays."""
    log = asyncio.run(_with_js(read_log))
    letter = _find(log, dead_letter_id)
    doc = letter.model_dump(mode="json", exclude={"original_payload_b64"})
    doc["payload_bytes"] = len(base64.b64decode(letter.original_payload_b64))
    if payload:
        doc["payload"] = _decoded(letter.original_payload_b64)
    doc["republish_subject"] = republish_subject(letter)
    doc["replays"] = [r.model_dump(mode="json") for r in log.replays.get(letter.id, [])]
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))


@app.command("replay")
def replay_cmd(
    dead_letter_id: Annotated[
        str | None, typer.Argument(help="Id (or unique prefix) of the dead letter to replay.")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter not replayed yet.")
    ] = False,
    service: ServiceOption = None,
    tenant: TenantOption = None,
) -> None:
    """Republish dead letters to their original subjects."""
    if (dead_letter_id is None) == (not all_):
        raise typer.BadParameter("give a dead letter id or --all (not both)")
    replayed = asyncio.run(_with_js(lambda js: _replay(js, dead_letter_id, service, tenant)))
    for event in replayed:
        typer.echo(f"replayed {event.dead_letter_id} to {event.republished_subject}")
    typer.echo(f"{len(replayed)} replayed")


async def _replay(
    js: JetStreamContext, dead_letter_id: str | None, service: str | None, tenant: str | None
) -> list[DeadLetterReplayed]:
    log = await read_log(js)
    if dead_letter_id is not None:
        targets: Iterable[DeadLettered] = [_find(log, dead_letter_id)]
    else:
        targets = [d for d in log.select(service=service, tenant=tenant) if d.id not in log.replays]
    actor = operator()
    return [await replay(js, letter, actor) for letter in targets]


async def _with_js(work: Callable[[JetStreamContext], Awaitable[T]]) -> T:
    nc = await nats.connect(
        server_urls(topology.nats_url()), connect_timeout=3, max_reconnect_attempts=1
    )
    try:
        return await work(nc.jetstream())
    finally:
        await nc.close()


def _find(log: DeadLetterLog, prefix: str) -> DeadLettered:
    try:
        return log.find(prefix)
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _short_class(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def _decoded(payload_b64: str) -> object:
    raw = base64.b64decode(payload_b64)
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")
