"""The entry point shared by every service's ``__main__``.

``zapflow-<service>`` runs the service until SIGTERM/SIGINT; ``zapflow-<service> migrate`` only
applies the service's migrations and exits (a Kubernetes init container or a deploy job runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import TypeVar

import uvloop
from pydantic import ValidationError

from zapflow.runtime import db, logging, telemetry
from zapflow.runtime.service import Service
from zapflow.runtime.settings import BaseServiceSettings

S = TypeVar("S", bound=BaseServiceSettings)


def run_service_main(
    name: str,
    settings_cls: type[S],
    create_service: Callable[[S], Service],
    argv: list[str] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"zapflow-{name}", description=f"Zapflow {name} service")
    parser.add_argument("command", nargs="?", choices=["run", "migrate"], default="run")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    try:
        settings = settings_cls()
    except ValidationError as exc:  # a clear refusal, not a traceback
        sys.stderr.write(f"zapflow-{name}: invalid settings: {exc}\n")
        raise SystemExit(2) from None
    logging.configure(name, settings.log_level, settings.log_format)
    service = create_service(settings)
    if args.command == "migrate":
        if service.migrations is not None:
            asyncio.run(
                db.migrate(settings.database_url.get_secret_value(), name, service.migrations)
            )
        return
    telemetry.configure(name, settings.otel_endpoint)
    uvloop.run(service.run_until_signalled())
