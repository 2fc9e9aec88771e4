"""Fixtures for the handler tests: the in-memory adapters, on a fixed start time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from zapflow.compliance.adapters.memory import ManualClock, MemoryStore, RecordingPublisher

START = datetime(2025, 6, 10, 15, 0, tzinfo=UTC)  # 12:00 in São Paulo


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def publish() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()
