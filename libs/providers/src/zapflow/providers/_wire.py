"""Total readers for untrusted JSON: every function accepts anything and never raises.

Webhook bodies are attacker-controlled and vendors change shapes between releases, so parsers read
them only through these helpers: a wrong type reads as "absent" instead of raising.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from datetime import UTC, datetime
from typing import Any, Final

from zapflow.providers.errors import WebhookPayloadError

JsonDict = dict[str, Any]

_MAX_UNIX_SECONDS: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_INT_DIGITS: Final = 20
_FRACTION: Final = re.compile(r"(\.\d{6})\d+")
_INDEX_BYTES_LIMIT: Final = 1 << 16


def decode_json(body: bytes, *, provider: str) -> Any:
    """``json.loads`` that raises only :class:`WebhookPayloadError`."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise WebhookPayloadError("body is not valid JSON", provider=provider) from exc


def obj(value: Any) -> JsonDict:
    return value if isinstance(value, dict) else {}


def arr(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def objs(value: Any) -> list[JsonDict]:
    """The dict items of a list (a lone dict counts as a one-item list)."""
    if isinstance(value, dict):
        return [value]
    return [item for item in arr(value) if isinstance(item, dict)]


def string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def nonempty(value: Any) -> str | None:
    """A non-blank string, or None."""
    return value if isinstance(value, str) and value.strip() else None


def ident(value: Any) -> str | None:
    """An id: a non-blank string, or an integer rendered as one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return nonempty(value)


def flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def integer(value: Any) -> int | None:
    """int from an int, an integral float, a digit string or a protobuf ``{low, high}`` long."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        digits = text.removeprefix("-")
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_INT_DIGITS:
            return int(text)
        return None
    if isinstance(value, dict):
        low, high = value.get("low"), value.get("high")
        if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
            if isinstance(high, bool) or abs(high) > 0xFFFFFFFF:
                return None
            return (high << 32) | (low & 0xFFFFFFFF)
    return None


def number(value: Any) -> float | None:
    """A finite float from a number or numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            result = float(value)
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def unix_seconds(value: Any) -> datetime | None:
    """Aware UTC datetime from Unix seconds (int, float, digit string or ``{low, high}``)."""
    seconds = number(value) if not isinstance(value, dict) else integer(value)
    if seconds is None or not 0 <= seconds <= _MAX_UNIX_SECONDS:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def unix_millis(value: Any) -> datetime | None:
    millis = number(value) if not isinstance(value, dict) else integer(value)
    return None if millis is None else unix_seconds(millis / 1000)


def rfc3339(value: Any) -> datetime | None:
    """Aware UTC datetime from RFC 3339 / ISO 8601 text; naive values are taken as UTC.

    Go's zero time (``0001-01-01T00:00:00Z``) and nanosecond fractions are handled.
    """
    text = nonempty(value)
    if text is None or len(text) > 64:
        return None
    text = _FRACTION.sub(r"\1", text.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        return None
    return None if parsed.year <= 1 else parsed


def byte_string(value: Any) -> bytes | None:
    """Bytes from a base64 string, a list of ints, or a protobufjs index object ``{"0": 12, …}``."""
    items: list[Any]
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    if isinstance(value, dict):
        if not value or len(value) > _INDEX_BYTES_LIMIT:
            return None
        items = []
        for position in range(len(value)):
            if str(position) not in value:
                return None
            items.append(value[str(position)])
    elif isinstance(value, list):
        items = value
    else:
        return None
    if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in items):
        return None
    return bytes(items)


def b64(value: Any) -> str | None:
    """Standard base64 text of :func:`byte_string` (the form Meta uses for ``sha256``)."""
    raw = byte_string(value)
    return base64.b64encode(raw).decode("ascii") if raw else None


def ci_get(data: JsonDict, name: str) -> Any:
    """``data[name]``, else a case-insensitive key match (``URL``/``url``, ``ID``/``id``)."""
    if name in data:
        return data[name]
    lowered = name.lower()
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None
