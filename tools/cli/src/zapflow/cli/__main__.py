"""The ``zapflow`` command."""

from __future__ import annotations

import asyncio
import sys

import typer

from zapflow.cli import stack, topology
from zapflow.cli.audit_cmd import app as audit_app
from zapflow.cli.dlq_cmd import app as dlq_app
from zapflow.cli.migrations import migrate_all
from zapflow.cli.nats_cmd import app as nats_app
from zapflow.cli.providers_cmd import app as providers_app
from zapflow.cli.status import jetstream_state, parked_sends, service_health

app = typer.Typer(help="Zapflow: run, inspect and operate the system.", no_args_is_help=True)
app.add_typer(
    providers_app, name="providers", help="Parse provider payloads into canonical events."
)
app.add_typer(
    audit_app, name="audit", help="Compare what Zapflow sent with what the provider accepted."
)
app.add_typer(dlq_app, name="dlq", help="Inspect and replay dead letters.")
app.add_typer(nats_app, name="nats", help="NATS identities and the server's authorization.")


@app.command()
def up(
    ready_timeout: float = typer.Option(60.0, help="Seconds to wait for every service."),
) -> None:
    """Start NATS, PostgreSQL, migrations, the demo tenant, all six services and the simulator."""
    raise typer.Exit(stack.up(ready_timeout))


@app.command()
def migrate() -> None:
    """Apply every service's pending migrations to DATABASE_URL."""
    applied = asyncio.run(migrate_all(topology.database_url()))
    for service, versions in applied.items():
        typer.echo(f"{service:<11} {', '.join(versions) if versions else 'up to date'}")


@app.command()
def status(
    all_consumers: bool = typer.Option(
        False, "--all", help="Also list ephemeral consumers (KV watchers, ordered readers)."
    ),
) -> None:
    """Services' readiness, JetStream streams with message counts, consumers with backlog,
    and the channels whose sends the sender parked out of memory."""
    healthy = True
    typer.echo("SERVICE     URL                     STATUS")
    for h in asyncio.run(service_health()):
        healthy &= h.ready
        typer.echo(f"{h.name:<11} {h.url:<23} {h.detail}")
    try:
        streams, consumers = asyncio.run(jetstream_state(topology.nats_url()))
    except Exception as exc:  # the command reports it; nothing to recover
        typer.echo(f"\nnats unreachable at {topology.nats_url()}: {type(exc).__name__}")
        raise typer.Exit(1) from exc
    typer.echo("\nSTREAM                  MESSAGES        BYTES  CONSUMERS")
    for s in streams:
        typer.echo(f"{s.name:<22} {s.messages:>9} {s.bytes:>12} {s.consumers:>10}")
    typer.echo(
        "\nSTREAM                 CONSUMER                    PENDING  ACK_PENDING  REDELIVERED"
    )
    shown = [c for c in consumers if all_consumers or c.durable]
    for c in shown:
        typer.echo(
            f"{c.stream:<22} {c.name:<26} {c.pending:>8} {c.ack_pending:>12} {c.redelivered:>12}"
        )
    if hidden := len(consumers) - len(shown):
        typer.echo(f"({hidden} ephemeral consumers not shown; --all lists them)")
    _print_parked()
    raise typer.Exit(0 if healthy else 1)


def _print_parked() -> None:
    """Sends parked by the sender: channels that hold more than their memory budget (a slow
    pace, a provider refusing them, a reached daily cap); they are sent in order as they free
    up. A count that only grows is a channel that cannot send."""
    try:
        parked = asyncio.run(parked_sends(topology.database_url()))
    except Exception as exc:  # reported; the rest of the status stands
        typer.echo(f"\nparked sends: database unreachable ({type(exc).__name__})")
        return
    typer.echo(
        "\nPARKED SENDS (sender)  TENANT               CHANNEL                PARKED  OLDEST"
    )
    for row in parked:
        typer.echo(
            f"{'':<22} {row.tenant_id:<20} {row.channel_id:<22} {row.parked:>6}"
            f"  {row.oldest_s:>5.0f} s"
        )
    if not parked:
        typer.echo(f"{'':<22} none: every channel holds its sends within its budget")


@app.command()
def docs(
    output: str = typer.Option("docs/asyncapi.json", help="Where to write the document."),
) -> None:
    """Generate the AsyncAPI document of every subject."""
    from zapflow.contracts import asyncapi

    asyncapi.main([output])


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
