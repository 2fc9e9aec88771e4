"""Composition root of the realtime service."""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from zapflow.contracts.streams import consumers_owned_by, streams_owned_by
from zapflow.realtime.settings import Settings
from zapflow.runtime.service import Service

NAME: Final = "realtime"


def create_service(settings: Settings) -> Service:
    return Service(
        NAME,
        settings,
        streams=streams_owned_by(NAME),
        consumers=consumers_owned_by(NAME),
        migrations=files("zapflow.realtime") / "migrations",
    )
