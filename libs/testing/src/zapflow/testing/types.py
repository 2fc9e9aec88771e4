"""Types for annotating tests that use the plugin's fixtures."""

from __future__ import annotations

from typing import Protocol


class DatabaseFactory(Protocol):
    """The ``fresh_db`` fixture: creates a uniquely named database and returns its DSN."""

    def __call__(self, prefix: str = "test") -> str: ...
