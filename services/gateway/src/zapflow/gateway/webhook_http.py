"""HTTP plumbing shared by the webhook endpoints: answers, headers, query, limits."""

from __future__ import annotations

import math
from typing import Final
from urllib.parse import parse_qsl

from starlette.types import Scope

JSON: Final = (b"content-type", b"application/json")
TEXT: Final = (b"content-type", b"text/plain; charset=utf-8")

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


def error(status: int, reason: str, *extra: tuple[bytes, bytes]) -> Answer:
    body = b'{"error":"' + reason.replace('"', "'").encode() + b'"}'
    return status, body, [JSON, *extra]


def retry_after(wait: float) -> tuple[bytes, bytes]:
    return (b"retry-after", str(max(1, math.ceil(wait))).encode())


NOT_FOUND: Final = error(404, "unknown channel")
TOO_LARGE: Final = error(413, "body too large")
UNAVAILABLE: Final = error(503, "channel unavailable")
NOT_STORED: Final = error(503, "not stored, retry", (b"retry-after", b"1"))
FOREIGN: Final = error(403, "payload is for another channel")
NO_ROUTE: Final = error(404, "not found")
NO_METHOD: Final = error(405, "method not allowed")


def too_long(content_length: str | None, limit: int) -> bool:
    if content_length is None:
        return False
    try:
        return int(content_length) > limit
    except ValueError:
        return False  # the server rejects a malformed Content-Length; the stream limit holds


def request_headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))  # ASGI: lower-case
    return headers


def request_query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope["query_string"]
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}


class NotStored(Exception):
    """JetStream (or the body store) did not acknowledge: answer 503, the provider retries."""
