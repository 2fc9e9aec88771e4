"""The hot path's malformed-body check: is this the provider's envelope at all? No full parse.

Each check mirrors the first thing the provider's parser in ``zapflow.providers`` verifies before
it reads anything (so a body accepted here never makes ingest raise ``WebhookPayloadError``):

* meta: a JSON object with ``object: "whatsapp_business_account"`` and an ``entry`` list;
* evolution: a JSON object with a string ``event`` and a ``data`` member;
* zapi: a JSON object with a string ``type``;
* wuzapi: the event map (a JSON object with a string ``type``), sent either as JSON or as an
  url-encoded form whose ``jsonData`` field holds it.

JSON is decoded with orjson (about a microsecond for a typical webhook), falling back to the
standard library's decoder that the parsers use, so both accept exactly the same documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import orjson

from zapflow.providers.errors import WebhookPayloadError
from zapflow.providers.wuzapi.inbound import decode as wuzapi_decode

NOT_JSON: Final = "body is not valid JSON"
NOT_OBJECT: Final = "body is not a JSON object"


class _Malformed(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise _Malformed(NOT_JSON) from None
    if not isinstance(data, dict):
        raise _Malformed(NOT_OBJECT)
    return data


def _meta(body: bytes, _content_type: str) -> tuple[str | None, Any]:
    data = _object(body)
    if data.get("object") != "whatsapp_business_account" or not isinstance(data.get("entry"), list):
        return "not a whatsapp_business_account envelope", data
    return None, data


def _evolution(body: bytes, _content_type: str) -> tuple[str | None, Any]:
    data = _object(body)
    if not isinstance(data.get("event"), str) or "data" not in data:
        return "not an Evolution event envelope", data
    return None, data


def _zapi(body: bytes, _content_type: str) -> tuple[str | None, Any]:
    data = _object(body)
    if not isinstance(data.get("type"), str):
        return "not a Z-API callback", data
    return None, data


def _wuzapi(body: bytes, content_type: str) -> tuple[str | None, Any]:
    try:
        data = wuzapi_decode(body, content_type)
    except WebhookPayloadError as exc:
        return exc.reason, None
    if not isinstance(data.get("type"), str):
        return "not a WuzAPI event map", data
    return None, data


_CHECKS: Final[dict[str, Callable[[bytes, str], tuple[str | None, Any]]]] = {
    "meta": _meta,
    "evolution": _evolution,
    "zapi": _zapi,
    "wuzapi": _wuzapi,
}


def inspect(provider: str, body: bytes, content_type: str) -> tuple[str | None, Any]:
    """``(reason, data)``: a short reason for a 400 (None if ``body`` looks like
    ``provider``'s webhook) and the decoded envelope (the event map for WuzAPI), which the hot
    path reads the receiving identity and carried secrets from without decoding twice."""
    check = _CHECKS.get(provider)
    if check is None:
        return None, None
    try:
        return check(body, content_type)
    except _Malformed as exc:
        return exc.reason, None


def malformed(provider: str, body: bytes, content_type: str) -> str | None:
    """None if ``body`` looks like ``provider``'s webhook, else a short reason for the 400."""
    return inspect(provider, body, content_type)[0]
