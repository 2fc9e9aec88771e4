"""Where a message's media bytes come from, per provider.

In order of preference:

1. **inline** (Evolution ``data.message.base64`` with webhookBase64 on, WuzAPI ``base64``): read
   from the raw webhook kept in ``webhook_log``; no network call;
2. **Meta**: ``GET /<media id>`` with the channel's access token gives a short-lived URL, which is
   fetched with the same token;
3. **a plain URL** (Z-API storage, Evolution ``mediaUrl`` / WuzAPI ``s3.url`` buckets): fetched as
   is. WhatsApp CDN URLs (``*.whatsapp.net``) are skipped: those files are end-to-end encrypted;
4. **Evolution** ``POST /chat/getBase64FromMediaMessage/<instance>`` with the instance's api key.

WuzAPI without inline base64 or S3 has no download route here (its ``/chat/download*`` calls need
the message's media key): the job fails with ``no downloadable source``.

Every URL here is chosen by a tenant (the channel's ``base_url``) or by a payload, so:

* the client is the egress guard's (``zapflow.runtime.egress``): each connection, on every
  redirect hop, goes only to a checked public address (or one ``ZF_EGRESS_ALLOW`` names); a
  refused address fails the job (``egress_refused``, permanent);
* redirects are followed by :func:`zapflow.runtime.egress.stream`: GET only, at most 5, and the
  channel's credentials are dropped once a hop leaves the first URL's origin;
* a channel's credentials go only where they belong: the ``apikey`` / Meta token to the
  channel's own base URL, and the Meta token to a media URL only when its host is Meta's
  (:func:`zapflow.providers.meta.outbound.is_meta_host`) or the channel's base URL origin; a
  payload's plain URL is fetched with no credentials at all;
* answers are bounded: ``max_bytes`` per response and ``deadline_s`` for the whole download;
* the providers library's kill switch still applies (``ZF_ALLOW_PROVIDER_REQUESTS``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import httpx

from zapflow.contracts.errors import PermanentError, TransientError
from zapflow.contracts.queries.gateway_v1 import ChannelCredentialsReply
from zapflow.ingest.adapters.pg_media import MediaJob
from zapflow.ingest.ports import CredentialsLookup
from zapflow.providers._http import ensure_allowed
from zapflow.providers.meta.outbound import is_meta_host
from zapflow.runtime import egress

META_DEFAULT_BASE: Final = "https://graph.facebook.com/v21.0"
FORM: Final = "application/x-www-form-urlencoded"

RawBody = Callable[[UUID], Awaitable[tuple[bytes, str | None] | None]]


class MediaUnavailable(PermanentError):
    """The media cannot be downloaded (no source, gone, too large, channel unknown)."""


@dataclass(frozen=True)
class Fetched:
    data: bytes
    mime_type: str | None = None


def _b64(value: Any) -> bytes | None:
    """Bytes of a base64 string or ``data:`` URL; None when it is neither."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return None


def inline_media(
    provider: str, body: bytes, content_type: str | None, provider_message_id: str
) -> bytes | None:
    """The base64 media an Evolution or WuzAPI webhook carries for ``provider_message_id``."""
    try:
        if provider == "wuzapi":
            doc = _wuzapi_document(body, content_type)
            info = (
                doc.get("event", {}).get("Info", {}) if isinstance(doc.get("event"), dict) else {}
            )
            if info.get("ID") not in (None, provider_message_id):
                return None
            return _b64(doc.get("base64"))
        if provider == "evolution":
            data = json.loads(body).get("data")
            if not isinstance(data, dict) or data.get("key", {}).get("id") != provider_message_id:
                return None
            message = data.get("message")
            return _b64(message.get("base64")) if isinstance(message, dict) else None
    except (ValueError, AttributeError, TypeError):
        return None
    return None


def _wuzapi_document(body: bytes, content_type: str | None) -> dict[str, Any]:
    if (content_type or "").split(";", 1)[0].strip().lower() == FORM:
        fields = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        loaded = json.loads(fields.get("jsonData", ["{}"])[0])
    else:
        loaded = json.loads(body)
    return loaded if isinstance(loaded, dict) else {}


def encrypted_cdn(url: str) -> bool:
    host = httpx.URL(url).host
    return host == "whatsapp.net" or host.endswith(".whatsapp.net")


def meta_token_may_go_to(url: str, channel_base_url: str) -> bool:
    """True if a Meta channel's token may be sent to ``url``: https on Meta's own domains, or
    the channel's base URL origin (a simulator, a tenant's proxy). Anywhere else the URL is
    fetched without it."""
    try:
        target = httpx.URL(url)
        base = httpx.URL(channel_base_url)
    except httpx.InvalidURL:
        return False
    if egress.origin(target) == egress.origin(base):
        return True
    return target.scheme == "https" and is_meta_host(target.host)


class MediaFetcher:
    """Downloads a job's media with the strategies above; raises Transient/PermanentError."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        credentials: CredentialsLookup,
        raw_body: RawBody,
        *,
        max_bytes: int,
        deadline_s: float | None = None,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._raw_body = raw_body
        self._max = max_bytes
        self._deadline_s = deadline_s

    async def fetch(self, job: MediaJob) -> Fetched:
        """The job's bytes, within ``deadline_s`` for every lookup and download together."""
        try:
            async with asyncio.timeout(self._deadline_s):
                return await self._fetch(job)
        except TimeoutError as exc:
            raise TransientError("media download took too long", code="timeout") from exc

    async def _fetch(self, job: MediaJob) -> Fetched:
        if job.provider in ("evolution", "wuzapi"):
            raw = await self._raw_body(job.source_event_id)
            data = inline_media(job.provider, *raw, job.provider_message_id) if raw else None
            if data is not None:
                return Fetched(data, job.media.mime_type)
        if job.provider == "meta" and job.media.provider_media_id:
            return await self._meta(job, job.media.provider_media_id)
        if job.media.url and not encrypted_cdn(job.media.url):
            return await self._get(job.provider, job.media.url, {})
        if job.provider == "evolution":
            return await self._evolution(job)
        raise MediaUnavailable("no downloadable source", code="no_source")

    async def _channel(self, job: MediaJob) -> ChannelCredentialsReply:
        reply = await self._credentials(job.tenant_id, job.channel_id)
        if not reply.found:
            raise MediaUnavailable("channel not found", code="unknown_channel")
        return reply

    async def _meta(self, job: MediaJob, media_id: str) -> Fetched:
        channel = await self._channel(job)
        token = channel.credentials.get("access_token")
        if not token:
            raise MediaUnavailable("channel has no access_token", code="no_credentials")
        auth = {"Authorization": f"Bearer {token}"}
        base = (channel.base_url or META_DEFAULT_BASE).rstrip("/")
        info = await self._json(job.provider, "GET", f"{base}/{urllib.parse.quote(media_id)}", auth)
        url = info.get("url")
        if not isinstance(url, str) or not url:
            raise MediaUnavailable("media lookup returned no url", code="no_url")
        fetched = await self._get(
            job.provider, url, auth if meta_token_may_go_to(url, base) else {}
        )
        mime = info.get("mime_type")
        return Fetched(fetched.data, mime if isinstance(mime, str) else fetched.mime_type)

    async def _evolution(self, job: MediaJob) -> Fetched:
        channel = await self._channel(job)
        api_key = channel.credentials.get("api_key")
        instance = channel.provider_account or channel.credentials.get("instance")
        if not (api_key and instance and channel.base_url):
            raise MediaUnavailable("channel lacks api_key/instance/base_url", code="no_credentials")
        path = f"/chat/getBase64FromMediaMessage/{urllib.parse.quote(instance)}"
        url = channel.base_url.rstrip("/") + path
        body = {"message": {"key": {"id": job.provider_message_id}}, "convertToMp4": False}
        doc = await self._json(job.provider, "POST", url, {"apikey": api_key}, body)
        data = _b64(doc.get("base64"))
        if data is None:
            raise MediaUnavailable("no base64 in the provider's answer", code="no_data")
        mime = doc.get("mimetype")
        return Fetched(data, mime if isinstance(mime, str) else job.media.mime_type)

    async def _json(
        self,
        provider: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any = None,
    ) -> dict[str, Any]:
        content, _ = await self._send(provider, method, url, headers, body)
        try:
            doc = json.loads(content)
        except ValueError as exc:
            raise MediaUnavailable("provider answered with no JSON", code="bad_answer") from exc
        if not isinstance(doc, dict):
            raise MediaUnavailable("provider answered with no JSON object", code="bad_answer")
        return doc

    async def _get(self, provider: str, url: str, headers: Mapping[str, str]) -> Fetched:
        data, mime = await self._send(provider, "GET", url, headers, None)
        return Fetched(data, mime)

    async def _send(
        self,
        provider: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
    ) -> tuple[bytes, str | None]:
        """The response body (at most ``max_bytes``) and its media type; redirects followed by
        the egress guard's rules."""
        ensure_allowed(url, provider)
        try:
            async with egress.stream(
                self._client, method, url, headers=headers, json=body
            ) as response:
                _check_status(response.status_code)
                mime = response.headers.get("content-type", "").split(";")[0].strip() or None
                chunks = bytearray()
                async for chunk in response.aiter_bytes():
                    chunks += chunk
                    if len(chunks) > self._max:
                        raise MediaUnavailable("media larger than the limit", code="too_large")
                return bytes(chunks), mime
        except httpx.TimeoutException as exc:
            raise TransientError("media download timed out", code="timeout") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"media source unreachable: {type(exc).__name__}") from exc


def _check_status(status: int) -> None:
    if 200 <= status < 300:
        return
    if status in (401, 403, 408, 429) or status >= 500:  # 401/403: credentials may be fixed
        raise TransientError(f"media source HTTP {status}", code=f"http_{status}")
    raise MediaUnavailable(f"media source HTTP {status}", code=f"http_{status}")
