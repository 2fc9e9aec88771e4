"""Values for PostgreSQL text and jsonb columns.

PostgreSQL text cannot hold NUL characters (and jsonb rejects ``\\u0000``), while a provider
payload may carry them; they are dropped here rather than failing the whole webhook.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel


def clean(value: Any) -> Any:
    """``value`` with NUL characters removed from every string inside it."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def text(value: str | None) -> str | None:
    return None if value is None else clean(value)


def dumps(value: Any) -> str | None:
    """JSON text for a jsonb parameter (``$n::jsonb``); None stays SQL NULL."""
    if value is None:
        return None
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return orjson.dumps(clean(value)).decode()


def loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)
