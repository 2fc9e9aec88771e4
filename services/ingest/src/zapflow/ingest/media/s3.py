"""An S3-compatible media store over httpx, signed with AWS Signature Version 4.

Path-style URLs (``<endpoint>/<bucket>/<prefix><key>``), which AWS S3, MinIO, Ceph RGW,
Cloudflare R2 and Backblaze B2 all accept. Only three calls are needed: ``PUT`` an object,
``GET`` a byte range, ``DELETE``. The payload hash is always computed (no ``UNSIGNED-PAYLOAD``).
:func:`sign` is the whole SigV4 algorithm (canonical request, string to sign, derived key).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote

import httpx

from zapflow.contracts.envelope import utcnow
from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.ingest.media.keys import check_key

ALGORITHM: Final = "AWS4-HMAC-SHA256"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    k_date = _hmac(f"AWS4{secret_access_key}".encode(), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def sign(
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    payload_sha256: str,
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    now: datetime,
    service: str = "s3",
) -> dict[str, str]:
    """The headers to add to a request so that S3 accepts it: ``Authorization``,
    ``x-amz-date`` and ``x-amz-content-sha256``. ``headers`` are the request's other headers
    (all of them are signed, with ``host``); ``url.raw_path`` must already be URI-encoded."""
    amz_date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed["host"] = url.netloc.decode()
    signed["x-amz-content-sha256"] = payload_sha256
    signed["x-amz-date"] = amz_date
    names = sorted(signed)
    path, _, query = url.raw_path.decode().partition("?")
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(httpx.QueryParams(query).multi_items())
    )
    canonical = "\n".join(
        (
            method.upper(),
            path or "/",
            canonical_query,
            "".join(f"{n}:{signed[n]}\n" for n in names),
            ";".join(names),
            payload_sha256,
        )
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        (ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest())
    )
    key = signing_key(secret_access_key, date, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Authorization": f"{ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}",
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_sha256,
    }


class S3MediaStore:
    """:class:`zapflow.ingest.ports.MediaStore` on an S3-compatible bucket."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        endpoint: str,
        bucket: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        prefix: str = "",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._client = client
        self._base = endpoint.rstrip("/")
        self._bucket = bucket
        self._region = region
        self._access_key_id = access_key_id
        self._secret = secret_access_key
        self._prefix = prefix
        self._clock = clock

    def url(self, key: str) -> httpx.URL:
        path = quote(f"/{self._bucket}/{self._prefix}{check_key(key)}", safe="/-_.~")
        return httpx.URL(self._base + path)

    async def _send(
        self, method: str, key: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        url = self.url(key)
        extra = dict(headers or {})
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        extra.update(
            sign(
                method,
                url,
                extra,
                payload,
                access_key_id=self._access_key_id,
                secret_access_key=self._secret,
                region=self._region,
                now=self._clock(),
            )
        )
        try:
            response = await self._client.request(method, url, content=body or None, headers=extra)
        except httpx.TransportError as exc:
            raise TransientError(f"media store unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise TransientError(f"media store HTTP {response.status_code}")
        return response

    async def put(self, key: str, data: bytes, mime_type: str | None) -> None:
        headers = {"content-type": mime_type or "application/octet-stream"}
        response = await self._send("PUT", key, data, headers)
        if response.status_code != 200:
            raise PermanentError(f"media store refused PUT: HTTP {response.status_code}")

    async def read(self, key: str, offset: int, length: int) -> bytes:
        headers = {"range": f"bytes={offset}-{offset + length - 1}"}
        response = await self._send("GET", key, headers=headers)
        if response.status_code == 404:
            raise KeyError(key)
        if response.status_code == 416:  # offset at or past the end
            return b""
        if response.status_code not in (200, 206):
            raise PermanentError(f"media store refused GET: HTTP {response.status_code}")
        data = response.content
        return data[offset : offset + length] if response.status_code == 200 else data

    async def delete(self, key: str) -> None:
        response = await self._send("DELETE", key)
        if response.status_code not in (200, 204, 404):
            raise PermanentError(f"media store refused DELETE: HTTP {response.status_code}")
