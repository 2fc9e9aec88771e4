"""The filesystem media store (the default) and the factory that picks one from settings.

Keys are ``<tenant>/<message id>``: plain path segments, never absolute, never ``..``. A file is
written to a temporary name, fsynced, then renamed into place, so a reader never sees half a file
and a crash leaves at worst an orphan temporary file.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from uuid import uuid4

import httpx

from zapflow.ingest.media.keys import check_key
from zapflow.ingest.media.s3 import S3MediaStore
from zapflow.ingest.ports import MediaStore
from zapflow.ingest.settings import Settings


class FileMediaStore:
    """Media files under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes, mime_type: str | None) -> None:
        await asyncio.to_thread(self._put, self.path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    async def read(self, key: str, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(self._read, self.path(key), offset, length)

    @staticmethod
    def _read(path: Path, offset: int, length: int) -> bytes:
        try:
            with path.open("rb") as f:
                f.seek(offset)
                return f.read(length)
        except FileNotFoundError:
            raise KeyError(path.name) from None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)


def media_store(settings: Settings, client: httpx.AsyncClient) -> MediaStore:
    """The store ``settings`` configure: filesystem (default) or an S3-compatible bucket."""
    if settings.media_store == "filesystem":
        return FileMediaStore(settings.media_dir)
    missing = [
        name
        for name in ("s3_endpoint", "s3_bucket", "s3_access_key_id", "s3_secret_access_key")
        if getattr(settings, name) is None
    ]
    if missing:
        raise ValueError(f"media_store=s3 needs {', '.join(missing)}")
    secret = settings.s3_secret_access_key
    return S3MediaStore(
        client,
        endpoint=str(settings.s3_endpoint),
        bucket=str(settings.s3_bucket),
        region=settings.s3_region,
        access_key_id=str(settings.s3_access_key_id),
        secret_access_key=secret.get_secret_value() if secret else "",
        prefix=settings.s3_prefix,
    )
