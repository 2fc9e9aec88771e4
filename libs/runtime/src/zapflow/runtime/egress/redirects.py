"""Following redirects without handing credentials to another origin.

httpx drops ``Authorization`` on a cross-origin redirect but keeps every other header, so a
provider's ``apikey`` or ``Client-Token`` would follow a redirect anywhere. :func:`stream`
follows redirects itself: only ``GET``/``HEAD`` requests follow (a redirected ``POST`` answers
its 3xx), at most ``max_redirects`` hops, only to ``http``/``https``; once a hop leaves the
first request's origin (scheme, host, port), every header the caller set is dropped for the
rest of the chain except ``Accept`` and ``User-Agent``. Each hop's connection still goes
through the client's transport, so on a :class:`GuardedTransport` every hop is checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import httpx

from zapflow.runtime.egress.policy import EgressRefused

MAX_REDIRECTS: Final = 5
SAFE_HEADERS: Final = frozenset({"accept", "user-agent"})
"""The only caller headers kept after a redirect to another origin."""
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_FOLLOW: Final = frozenset({"GET", "HEAD"})


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in."""
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _next_url(response: httpx.Response) -> httpx.URL:
    location = response.headers.get("location", "")
    try:
        target = response.request.url.join(location)
    except httpx.InvalidURL as exc:
        raise EgressRefused(response.request.url.host, None, "invalid redirect") from exc
    if target.scheme not in _DEFAULT_PORTS or not target.host:
        raise EgressRefused(target.host or "?", None, f"redirect to {target.scheme or '?'} URL")
    return target.copy_with(fragment=None)


@contextlib.asynccontextmanager
async def stream(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    max_redirects: int = MAX_REDIRECTS,
) -> AsyncIterator[httpx.Response]:
    """The final response to ``method url`` (streamed: read it inside the block), redirects
    followed as the module says. Raises :class:`EgressRefused` for a redirect to a non-HTTP
    scheme or past ``max_redirects``, and whatever the client raises."""
    first = httpx.URL(url)
    sent = dict(headers or {})
    request = client.build_request(method, first, headers=sent, json=json)
    hops = 0
    while True:
        response = await client.send(request, stream=True, follow_redirects=False)
        if not (response.is_redirect and request.method in _FOLLOW):
            break
        await response.aclose()
        hops += 1
        if hops > max_redirects:
            raise EgressRefused(first.host, None, f"more than {max_redirects} redirects")
        target = _next_url(response)
        if origin(target) != origin(first):
            sent = {k: v for k, v in sent.items() if k.lower() in SAFE_HEADERS}
        request = client.build_request(request.method, target, headers=sent)
    try:
        yield response
    finally:
        await response.aclose()
