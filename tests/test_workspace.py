"""Workspace-level guarantees that no single package can check alone."""

from importlib.resources import files

import pytest

from zapflow.contracts.streams import streams_owned_by
from zapflow.contracts.types import SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_ships_migrations_and_declares_its_topology(service: str) -> None:
    folder = files(f"zapflow.{service}") / "migrations"
    assert any(entry.name.endswith(".sql") for entry in folder.iterdir())
    assert streams_owned_by(service), f"{service} declares no stream"
