"""Media store keys: ``<tenant>/<message id>``, safe as file paths and S3 object names."""

from __future__ import annotations

import re
from typing import Final
from uuid import UUID

_SEGMENT: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_key(key: str) -> str:
    """``key`` if every ``/``-separated segment is a safe file name, else ``ValueError``."""
    parts = key.split("/")
    if not parts or any(not _SEGMENT.fullmatch(p) or p in (".", "..") for p in parts):
        raise ValueError(f"unsafe media key {key!r}")
    return key


def media_key(tenant_id: str, message_id: UUID) -> str:
    return check_key(f"{tenant_id}/{message_id}")
