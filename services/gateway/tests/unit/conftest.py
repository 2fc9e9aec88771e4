"""Shared plumbing for the gateway's unit tests: the recorded provider payloads.

They live in ``<parent of the repository>/shared/providers`` (``ZF_PROVIDER_FIXTURES``
overrides it), like the providers library's own tests use them.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

PROVIDERS = ("meta", "evolution", "zapi", "wuzapi")


@cache
def fixtures_root() -> Path:
    override = os.environ.get("ZF_PROVIDER_FIXTURES")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "providers"
        if all((candidate / name).is_dir() for name in PROVIDERS):
            return candidate
    raise pytest.UsageError("shared/providers not found; set ZF_PROVIDER_FIXTURES")


@pytest.fixture
def fixture_bytes() -> object:
    def read(provider: str, name: str) -> bytes:
        return (fixtures_root() / provider / name).read_bytes()

    return read
