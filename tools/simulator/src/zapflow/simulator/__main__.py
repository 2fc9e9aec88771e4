"""``zapflow-simulator``: serve the simulated provider, or print the effective settings."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from pydantic import ValidationError

from zapflow.runtime import logging as zf_logging
from zapflow.runtime.http import Server
from zapflow.simulator.app import create_app
from zapflow.simulator.config import SimulatorSettings

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="Simulated WhatsApp provider (Meta Cloud API, Evolution sendText): signed status "
    "webhooks, inbound replies, latency, errors, rate limits and an audit log of accepted sends.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        exists=True,
        dir_okay=False,
        help="YAML or JSON settings file.",
        show_default=False,
    ),
]


def load_settings(config: Path | None, **flags: Any) -> SimulatorSettings:
    """Settings from flags (those not None) > ``ZF_SIMULATOR_*`` > the file > defaults."""
    overrides: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    if config is not None:
        overrides["config_file"] = config
    if (audit_log := overrides.pop("audit_log", None)) is not None:
        overrides["audit"] = {"path": audit_log}
    try:
        return SimulatorSettings(**overrides)
    except ValidationError as exc:
        typer.echo(f"invalid simulator settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8086).")] = None,
    gateway_url: Annotated[
        str | None, typer.Option(help="Base of webhook URLs: <url>/webhooks/<provider>/<channel>.")
    ] = None,
    audit_log: Annotated[
        Path | None, typer.Option(help="Append accepted sends here (JSON lines).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed every random choice.")] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level.")] = None,
) -> None:
    """Serve the simulator until Ctrl-C / SIGTERM (then flush the audit log)."""
    settings = load_settings(
        config,
        host=host,
        port=port,
        gateway_url=gateway_url,
        audit_log=audit_log,
        seed=seed,
        log_level=log_level,
    )
    zf_logging.configure("simulator", settings.log_level, settings.log_format)
    numbers = ", ".join(f"{n.provider}:{n.channel_id}" for n in settings.numbers)
    logger.info("simulator serving %s on %s:%d", numbers, settings.host, settings.port)
    server = Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    asyncio.run(_serve_until_signalled(server))
    if not server.started:
        raise typer.Exit(1)


async def _serve_until_signalled(server: Server) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully and exit 0 (supervisors expect it)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    await server.serve()


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the effective settings as JSON (secrets masked)."""
    typer.echo(load_settings(config).model_dump_json(indent=2))


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
