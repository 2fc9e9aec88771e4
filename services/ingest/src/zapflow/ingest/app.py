"""Composition root of the ingest service."""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from zapflow.contracts.streams import consumers_owned_by, streams_owned_by
from zapflow.ingest.settings import Settings
from zapflow.runtime.service import Service

NAME: Final = "ingest"


def create_service(settings: Settings) -> Service:
    return Service(
        NAME,
        settings,
        streams=streams_owned_by(NAME),
        consumers=consumers_owned_by(NAME),
        migrations=files("zapflow.ingest") / "migrations",
    )
