"""Opaque keyset cursors: the (timestamp, id) of the last row of a page, base64url-encoded.

Pages are ordered by ``(timestamp DESC, id DESC)``; the next page holds the rows strictly after
the cursor in that order, so rows inserted meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from uuid import UUID

import orjson


class BadCursor(ValueError):
    """A cursor this service did not issue (or issued for another kind of list)."""


def encode(at: datetime, row_id: UUID) -> str:
    raw = orjson.dumps([at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = orjson.loads(raw)
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise BadCursor("cursor time is not aware")
        return parsed, UUID(row_id)
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise BadCursor("invalid cursor") from exc
