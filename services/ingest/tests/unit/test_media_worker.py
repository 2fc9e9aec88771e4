"""The media worker's outcomes with fakes: stored, failed for good, retried with backoff."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest

from zapflow.contracts.errors import TransientError
from zapflow.contracts.model import Media
from zapflow.ingest.adapters.pg_media import MediaJob, StoredMedia
from zapflow.ingest.media.sources import Fetched, MediaUnavailable
from zapflow.ingest.media.worker import MediaWorker, WorkerSettings

DATA = b"media-bytes"


@dataclass
class Queue:
    stored: list[StoredMedia] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    retried: list[tuple[str, float]] = field(default_factory=list)

    async def claim(self, limit: int, lease_s: float) -> list[MediaJob]:
        return []

    async def done(self, job: MediaJob, stored: StoredMedia) -> None:
        self.stored.append(stored)

    async def fail(self, job: MediaJob, error: str) -> None:
        self.failed.append(error)

    async def retry(self, job: MediaJob, error: str, delay_s: float) -> None:
        self.retried.append((error, delay_s))


@dataclass
class FakeFetcher:
    outcome: Any

    async def fetch(self, job: MediaJob) -> Fetched:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return Fetched(DATA, "image/png")


@dataclass
class FakeStore:
    objects: dict[str, bytes] = field(default_factory=dict)

    async def put(self, key: str, data: bytes, mime_type: str | None) -> None:
        self.objects[key] = data

    async def read(self, key: str, offset: int, length: int) -> bytes:
        return self.objects[key][offset : offset + length]

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)


def job(attempts: int = 1) -> MediaJob:
    sha = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    return MediaJob(
        message_id=uuid4(),
        tenant_id="acme",
        channel_id="ch",
        provider="zapi",
        provider_message_id="P",
        source_event_id=uuid4(),
        media=Media(sha256=sha, filename="a.png"),
        attempts=attempts,
    )


def worker(outcome: Any, queue: Queue, store: FakeStore) -> MediaWorker:
    return MediaWorker(
        queue,
        FakeFetcher(outcome),
        store,  # type: ignore[arg-type]
        WorkerSettings(max_attempts=3, backoff_base_s=5),
    )


async def test_fetched_media_is_stored_and_recorded() -> None:
    queue, store = Queue(), FakeStore()
    j = job()
    await worker(None, queue, store).process(j)
    (stored,) = queue.stored
    assert stored.key == f"acme/{j.message_id}"
    assert (stored.size_bytes, stored.sha256) == (len(DATA), hashlib.sha256(DATA).hexdigest())
    assert (stored.mime_type, stored.filename) == ("image/png", "a.png")
    assert store.objects[stored.key] == DATA


async def test_permanent_failure_fails_the_job_at_once() -> None:
    queue = Queue()
    await worker(MediaUnavailable("no downloadable source"), queue, FakeStore()).process(job())
    assert queue.failed == ["no downloadable source"]


@pytest.mark.parametrize("error", [TransientError("HTTP 503"), RuntimeError("bug")])
async def test_other_failures_retry_until_the_last_attempt(error: Exception) -> None:
    queue = Queue()
    await worker(error, queue, FakeStore()).process(job(attempts=1))
    assert len(queue.retried) == 1
    assert queue.retried[0][1] >= 1.0
    await worker(error, queue, FakeStore()).process(job(attempts=3))
    assert len(queue.failed) == 1
    assert queue.failed[0].startswith("gave up after 3 attempts")


async def test_retry_after_hint_is_honoured() -> None:
    queue = Queue()
    await worker(TransientError("slow down", retry_after=42.0), queue, FakeStore()).process(job())
    assert queue.retried == [("slow down", 42.0)]
