"""Apply every service's migrations (``zapflow migrate``)."""

from __future__ import annotations

from importlib.resources import files

from zapflow.cli.topology import SERVICES
from zapflow.runtime import db


async def migrate_all(dsn: str) -> dict[str, list[str]]:
    """Each service's schema brought up to date; returns the versions applied per service."""
    applied = {}
    for svc in SERVICES:
        folder = files(f"zapflow.{svc.name}") / "migrations"
        applied[svc.name] = await db.migrate(dsn, svc.name, folder)
    return applied
