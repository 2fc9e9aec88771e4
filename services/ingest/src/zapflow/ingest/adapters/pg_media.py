"""The durable media download queue (``media_jobs``) and the ``media`` rows, in PostgreSQL.

Workers on any replica claim due jobs with ``FOR UPDATE SKIP LOCKED``; claiming pushes
``next_attempt_at`` one lease ahead, so a job whose worker died becomes due again by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from uuid import UUID

import asyncpg

from zapflow.contracts.model import Media
from zapflow.ingest.adapters import pgjson


@dataclass(frozen=True)
class MediaJob:
    message_id: UUID
    tenant_id: str
    channel_id: str
    provider: str
    provider_message_id: str
    source_event_id: UUID
    media: Media
    attempts: int


@dataclass(frozen=True)
class StoredMedia:
    key: str
    mime_type: str | None
    size_bytes: int
    sha256: str
    filename: str | None


_CLAIM: Final = """
UPDATE media_jobs j SET attempts = j.attempts + 1,
  next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
FROM (
  SELECT message_id FROM media_jobs
  WHERE state = 'pending' AND next_attempt_at <= now()
  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
) due
WHERE j.message_id = due.message_id
RETURNING j.message_id, j.tenant_id, j.channel_id, j.provider, j.provider_message_id,
  j.source_event_id, j.media::text AS media, j.attempts
"""
_RAW_BODY: Final = "SELECT body, content_type FROM webhook_log WHERE event_id = $1"
_DONE: Final = """
WITH saved AS (
  INSERT INTO media (key, tenant_id, message_id, mime_type, size_bytes, sha256, filename)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  ON CONFLICT (message_id) DO UPDATE SET key = EXCLUDED.key, mime_type = EXCLUDED.mime_type,
    size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, stored_at = now()
  RETURNING message_id
), linked AS (
  UPDATE messages SET media = coalesce(media, '{}'::jsonb)
    || jsonb_build_object('stored_key', $1::text, 'size_bytes', $5::bigint)
    || CASE WHEN media ->> 'mime_type' IS NULL AND $4::text IS NOT NULL
            THEN jsonb_build_object('mime_type', $4::text) ELSE '{}'::jsonb END
  WHERE id = $3
  RETURNING id
)
UPDATE media_jobs SET state = 'done', last_error = NULL, updated_at = now() WHERE message_id = $3
"""
_RETRY: Final = """
UPDATE media_jobs SET next_attempt_at = now() + make_interval(secs => $2), last_error = $3,
  updated_at = now()
WHERE message_id = $1
"""
_FAIL: Final = """
UPDATE media_jobs SET state = 'failed', last_error = $2, updated_at = now() WHERE message_id = $1
"""


class PgMediaQueue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(self, limit: int, lease_s: float) -> list[MediaJob]:
        rows = await self._pool.fetch(_CLAIM, limit, lease_s)
        return [
            MediaJob(
                message_id=r["message_id"],
                tenant_id=r["tenant_id"],
                channel_id=r["channel_id"],
                provider=r["provider"],
                provider_message_id=r["provider_message_id"],
                source_event_id=r["source_event_id"],
                media=Media.model_validate_json(r["media"]),
                attempts=r["attempts"],
            )
            for r in rows
        ]

    async def raw_body(self, source_event_id: UUID) -> tuple[bytes, str | None] | None:
        """The raw webhook a job came from (inline base64 media lives there)."""
        row = await self._pool.fetchrow(_RAW_BODY, source_event_id)
        return None if row is None else (bytes(row["body"]), row["content_type"])

    async def done(self, job: MediaJob, stored: StoredMedia) -> None:
        await self._pool.execute(
            _DONE,
            stored.key,
            job.tenant_id,
            job.message_id,
            stored.mime_type,
            stored.size_bytes,
            stored.sha256,
            pgjson.text(stored.filename),
        )

    async def retry(self, job: MediaJob, error: str, delay_s: float) -> None:
        await self._pool.execute(_RETRY, job.message_id, delay_s, pgjson.text(error[:500]))

    async def fail(self, job: MediaJob, error: str) -> None:
        await self._pool.execute(_FAIL, job.message_id, pgjson.text(error[:500]))
