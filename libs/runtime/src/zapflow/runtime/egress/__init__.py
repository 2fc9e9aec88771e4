"""The one address guard for outbound HTTP to URLs a tenant or a payload chose.

Provider base URLs (the sender's calls, ingest's media lookups), media URLs from webhooks and
tenant webhook endpoints all go through it. The rule: a connection is opened only to an address
that was resolved and checked just before, and never to a loopback, private, link-local,
metadata, shared (CGNAT), multicast, unspecified or reserved address, in IPv4 or any IPv6 form
that embeds one (:mod:`~zapflow.runtime.egress.addresses`), unless the operator's allowance
names it (``ZF_EGRESS_ALLOW``, read by :class:`~zapflow.runtime.settings.BaseServiceSettings`;
empty by default; ``zapflow up`` and the test harness set loopback).

* :class:`EgressPolicy` — the allowance and the resolver; ``resolve`` checks every address of a
  name, ``open_connection`` connects an asyncio stream to a checked address (the sender's
  transport);
* :class:`GuardedTransport` / :func:`guarded_client` — httpx on the guarded network backend;
* :func:`stream` — follows redirects (GET/HEAD only, at most 5) and drops the caller's headers
  once a hop leaves the first request's origin;
* :class:`EgressRefused` — a ``PermanentError`` (code ``egress_refused``): the same address
  would be refused again.
"""

from zapflow.runtime.egress.addresses import (
    METADATA_ADDRESSES,
    METADATA_NAMES,
    embedded_ipv4,
    forbidden_class,
)
from zapflow.runtime.egress.policy import (
    LOOPBACK_ALLOWANCE,
    EgressPolicy,
    EgressRefused,
    Resolver,
    system_resolver,
)
from zapflow.runtime.egress.redirects import MAX_REDIRECTS, SAFE_HEADERS, origin, stream
from zapflow.runtime.egress.transport import GuardedBackend, GuardedTransport, guarded_client

__all__ = [
    "LOOPBACK_ALLOWANCE",
    "MAX_REDIRECTS",
    "METADATA_ADDRESSES",
    "METADATA_NAMES",
    "SAFE_HEADERS",
    "EgressPolicy",
    "EgressRefused",
    "GuardedBackend",
    "GuardedTransport",
    "Resolver",
    "embedded_ipv4",
    "forbidden_class",
    "guarded_client",
    "origin",
    "stream",
    "system_resolver",
]
