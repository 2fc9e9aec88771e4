"""The HTTP edge: the vendor-call kill switch, transport-error translation, HTTP-status fallbacks.

Two checks stand between an adapter and the network, and both must pass:

* **the kill switch** (here): unless ``ZF_ALLOW_PROVIDER_REQUESTS`` is set, a URL whose host is
  not loopback (``localhost``, ``127.x``, ``::1``) is refused before anything is sent, so tests
  and local runs never reach a real vendor;
* **the egress guard** (``zapflow.runtime.egress``, in the client the caller passes): the host
  is resolved and every address checked when a connection opens; loopback, private, link-local,
  metadata… are refused unless ``ZF_EGRESS_ALLOW`` names them. The guard raises a
  ``PermanentError`` (code ``egress_refused``), translated here to :class:`RequestNotAllowedError`.

Locally: switch unset, allowance loopback. In production: switch set, allowance empty.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from typing import Any, Final

import httpx

from zapflow.contracts.errors import PermanentError
from zapflow.providers.errors import (
    AuthenticationError,
    ChannelConfigError,
    InvalidRequestError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    RequestNotAllowedError,
    UnexpectedResponseError,
)

ALLOW_ENV: Final = "ZF_ALLOW_PROVIDER_REQUESTS"
"""Set to ``1``/``true``/``yes``/``on`` to let adapters call non-loopback hosts (production)."""

_TRUTHY: Final = frozenset({"1", "true", "yes", "on"})


def requests_allowed() -> bool:
    return os.environ.get(ALLOW_ENV, "").strip().lower() in _TRUTHY


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ensure_allowed(url: str, provider: str) -> None:
    """Refuse URLs that are not http(s), and non-loopback hosts unless :data:`ALLOW_ENV` is set."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ChannelConfigError("invalid provider base URL", provider=provider) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ChannelConfigError("provider base URL must be absolute http(s)", provider=provider)
    if not _is_loopback(parsed.host) and not requests_allowed():
        raise RequestNotAllowedError(
            f"refusing request to non-loopback host; set {ALLOW_ENV}=1 to allow", provider=provider
        )


async def perform(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: Any,
    provider: str,
) -> httpx.Response:
    """Send one request; httpx transport errors become :class:`TransientError` subclasses."""
    ensure_allowed(url, provider)
    try:
        return await client.request(method, url, headers=dict(headers), json=body)
    except httpx.TimeoutException as exc:
        raise ProviderTimeoutError(f"{provider} request timed out", provider=provider) from exc
    except httpx.UnsupportedProtocol as exc:
        raise ChannelConfigError("unsupported URL protocol", provider=provider) from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailableError(
            f"{provider} unreachable: {type(exc).__name__}", provider=provider
        ) from exc
    except PermanentError as exc:  # the egress guard refused the address
        raise RequestNotAllowedError(str(exc), provider=provider, code=exc.code) from exc


def response_json(body: bytes) -> Any:
    """Decoded JSON of a response body, or None when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (HTTP dates are ignored)."""
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86_400 else None


def error_for_status(
    provider: str,
    status_code: int,
    *,
    code: str | None = None,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """Fallback classification by HTTP status when the body says nothing more specific."""
    kwargs: dict[str, Any] = {
        "provider": provider,
        "code": code,
        "http_status": status_code,
        "detail": detail,
    }
    label = f"{provider} HTTP {status_code}"
    if status_code == 429:
        return RateLimitedError(
            f"{label}: rate limited", retry_after=retry_after(headers), **kwargs
        )
    if status_code == 408:
        return ProviderTimeoutError(f"{label}: timeout", **kwargs)
    if status_code >= 500:
        return ProviderUnavailableError(
            f"{label}: server error", retry_after=retry_after(headers), **kwargs
        )
    if status_code in (401, 403):
        return AuthenticationError(f"{label}: not authorized", **kwargs)
    if status_code == 404:
        return ChannelConfigError(f"{label}: not found (instance or path)", **kwargs)
    if 400 <= status_code < 500:
        return InvalidRequestError(f"{label}: request rejected", **kwargs)
    return UnexpectedResponseError(f"{label}: unexpected status", **kwargs)
