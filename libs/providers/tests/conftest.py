"""Shared test plumbing: locating the recorded provider payloads in ``../shared/providers``.

The fixtures live next to the repository root (``<parent of repo>/shared/providers``); the
locator walks up from this file until it finds a ``shared/providers`` directory, and
``ZF_PROVIDER_FIXTURES`` overrides it. A test module that defines ``PROVIDER`` and takes a
``fixture_name`` argument is run once per file in that provider's directory, so a fixture added
without an expectation fails instead of going unnoticed.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

FIXTURES_ENV = "ZF_PROVIDER_FIXTURES"
PROVIDER_DIRS = ("meta", "evolution", "zapi", "wuzapi")
FIXED_NOW = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)


@cache
def fixtures_root() -> Path:
    override = os.environ.get(FIXTURES_ENV)
    if override:
        root = Path(override).expanduser().resolve()
        if not root.is_dir():
            raise pytest.UsageError(f"{FIXTURES_ENV}={override} is not a directory")
        return root
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "providers"
        if all((candidate / name).is_dir() for name in PROVIDER_DIRS):
            return candidate
    raise pytest.UsageError(
        "provider fixtures not found: expected shared/providers next to the repo, "
        f"or set {FIXTURES_ENV}"
    )


def fixture_names(provider: str) -> list[str]:
    return sorted(p.name for p in (fixtures_root() / provider).glob("*.json"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    provider = getattr(metafunc.module, "PROVIDER", None)
    if "fixture_name" in metafunc.fixturenames and isinstance(provider, str):
        metafunc.parametrize("fixture_name", fixture_names(provider))


@pytest.fixture
def fixed_clock() -> Callable[[], datetime]:
    return lambda: FIXED_NOW


@pytest.fixture(scope="session")
def fixture_path() -> Callable[[str, str], Path]:
    """``fixture_path("meta", "inbound_text.json")`` -> the file's path."""
    return lambda provider, name: fixtures_root() / provider / name


@pytest.fixture(scope="session")
def raw() -> Callable[[str, str], bytes]:
    """``raw("meta", "inbound_text.json")`` -> the file's bytes."""

    def load(provider: str, name: str) -> bytes:
        return (fixtures_root() / provider / name).read_bytes()

    return load


@pytest.fixture(scope="session")
def doc() -> Callable[[str, str], Any]:
    """``doc("meta", "inbound_text.json")`` -> the file decoded as JSON (a fresh copy each call)."""

    def load(provider: str, name: str) -> Any:
        return json.loads((fixtures_root() / provider / name).read_bytes())

    return load


def form_body(fields: dict[str, str]) -> bytes:
    """Re-encode decoded form fields the way WuzAPI (Go ``url.Values.Encode``) does: sorted keys."""
    return urllib.parse.urlencode(sorted(fields.items())).encode()


@pytest.fixture(scope="session")
def to_form() -> Callable[[dict[str, str]], bytes]:
    return form_body
