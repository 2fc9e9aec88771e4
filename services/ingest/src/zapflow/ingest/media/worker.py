"""The media worker: claims due ``media_jobs``, downloads, stores, records, retries.

It runs as a background task of every ingest replica. ingest-raw nudges it when a webhook queued
a job, so media usually lands within a second; otherwise it polls every ``poll_s``. Transient
failures back off exponentially (with jitter) up to ``max_attempts``; permanent ones fail the job
at once with the reason. No event is published: no ``media_stored`` contract exists yet, so the
message row (``media.stored_key``) and the ``media`` table are the record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass

from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.ingest.adapters.pg_media import MediaJob, PgMediaQueue, StoredMedia
from zapflow.ingest.media.keys import media_key
from zapflow.ingest.media.sources import MediaFetcher
from zapflow.ingest.ports import MediaStore
from zapflow.runtime.consumer import backoff

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 4
    max_attempts: int = 8
    poll_s: float = 2.0
    lease_s: float = 180.0
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 3600.0


class MediaWorker:
    def __init__(
        self,
        queue: PgMediaQueue,
        fetcher: MediaFetcher,
        store: MediaStore,
        settings: WorkerSettings,
    ) -> None:
        self._queue = queue
        self._fetcher = fetcher
        self._store = store
        self._settings = settings
        self._wake = asyncio.Event()

    def nudge(self) -> None:
        """New jobs were queued: look now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        s = self._settings
        while not stop.is_set():
            self._wake.clear()
            try:
                jobs = await self._queue.claim(s.concurrency, s.lease_s)
            except Exception:
                logger.exception("media queue unavailable")
                jobs = []
            if jobs:
                outcomes = await asyncio.gather(
                    *(self.process(job) for job in jobs), return_exceptions=True
                )
                for outcome in outcomes:  # a job whose outcome was not saved is due again later
                    if isinstance(outcome, Exception):
                        logger.error("media job outcome not saved: %s", type(outcome).__name__)
                continue
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
            await asyncio.wait(waiters, timeout=s.poll_s, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def process(self, job: MediaJob) -> None:
        ids = {"message_id": str(job.message_id), "attempt": job.attempts}
        try:
            fetched = await self._fetcher.fetch(job)
            key = media_key(job.tenant_id, job.message_id)
            mime = job.media.mime_type or fetched.mime_type
            await self._store.put(key, fetched.data, mime)
            digest = hashlib.sha256(fetched.data).hexdigest()
            if not _matches(job.media.sha256, digest):
                logger.warning("media sha256 differs from the provider's", extra=ids)
            await self._queue.done(
                job, StoredMedia(key, mime, len(fetched.data), digest, job.media.filename)
            )
            logger.info("media stored", extra={**ids, "size_bytes": len(fetched.data)})
        except PermanentError as exc:
            logger.warning("media download failed", extra={**ids, "code": exc.code})
            await self._queue.fail(job, str(exc))
        except Exception as exc:
            await self._retry_or_fail(job, exc, ids)

    async def _retry_or_fail(self, job: MediaJob, exc: Exception, ids: dict[str, object]) -> None:
        s = self._settings
        if not isinstance(exc, TransientError):
            logger.exception("media job crashed", extra=ids)
        reason = str(exc) or type(exc).__name__
        if job.attempts >= s.max_attempts:
            logger.warning("media download gave up", extra=ids)
            await self._queue.fail(job, f"gave up after {job.attempts} attempts: {reason}")
            return
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        delay = retry_after or max(1.0, backoff(job.attempts, s.backoff_base_s, s.backoff_cap_s))
        await self._queue.retry(job, reason, delay)


def _matches(provider_sha256: str | None, hex_digest: str) -> bool:
    """True unless the provider gave a (base64) SHA-256 that differs from ``hex_digest``."""
    if not provider_sha256:
        return True
    try:
        return base64.b64decode(provider_sha256).hex() == hex_digest
    except (binascii.Error, ValueError):
        return True
