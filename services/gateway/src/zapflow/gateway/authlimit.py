"""Failed-authentication limit of the REST API: key guessing is slowed, valid keys keep working.

Two kinds of token bucket, both filled with *failures* (a request whose key is unknown, revoked
or refused; a missing key costs nothing and is not counted):

* per **client address** (IPv6 grouped by /64): ``address_burst`` failures, then one more per
  ``1 / address_rate_per_s`` seconds;
* per **presented key prefix** (``zf_<8 hex>``, public in logs and UIs): the same with
  ``prefix_burst`` / ``prefix_rate_per_s``, so guesses spread over many addresses at one key
  still slow down.

While either bucket of a request is empty, a key that is **not known good** is answered 429
with ``Retry-After`` at once, with no database lookup and no hint whether it was right. A key
that authenticated successfully in this process within ``known_ttl_s`` (its SHA-256 is kept
in a bounded set) is still looked up and checked as usual, revocation included: an attacker
filling the buckets of a shared address or of a tenant's key prefix never locks that tenant's
working key out; at worst a valid key that has not been used since this replica started
waits for the buckets to refill. Successes never refill a bucket (an attacker's own valid key
cannot reset its limit), and a key found invalid or revoked leaves the known set.

Limits are per gateway replica and in memory, like the webhook flood limit. Memory is bounded:
at most ``max_tracked`` buckets of each kind and known keys, least recently used dropped first.
Behind a proxy the client address is the proxy's unless uvicorn trusts its
``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from zapflow.gateway.ratelimit import KeyedBuckets

_V6_GROUP: Final = 64


def client_group(host: str | None) -> str:
    """The address a failure is counted against: IPv4 as is, IPv6 by its /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, _V6_GROUP), strict=False))
    return str(address)


@dataclass(frozen=True)
class AuthLimits:
    address_rate_per_s: float = 0.5
    address_burst: int = 20
    prefix_rate_per_s: float = 0.5
    prefix_burst: int = 20
    known_ttl_s: float = 86_400.0
    max_tracked: int = 100_000


class FailedAuthLimiter:
    """The limiter the module describes; ``clock`` is injectable for tests."""

    def __init__(
        self, limits: AuthLimits = AuthLimits(), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._addresses = KeyedBuckets(
            limits.address_rate_per_s,
            limits.address_burst,
            max_keys=limits.max_tracked,
            clock=clock,
        )
        self._prefixes = KeyedBuckets(
            limits.prefix_rate_per_s, limits.prefix_burst, max_keys=limits.max_tracked, clock=clock
        )
        self._known: OrderedDict[bytes, float] = OrderedDict()

    def retry_after(self, address: str, prefix: str, key_hash: bytes) -> float:
        """0.0 if the key may be checked now, else the seconds until it may (for 429)."""
        wait = max(self._addresses.wait(address), self._prefixes.wait(prefix))
        if wait > 0.0 and self._is_known(key_hash):
            return 0.0
        return wait

    def failed(self, address: str, prefix: str, key_hash: bytes) -> None:
        self._addresses.take(address)
        self._prefixes.take(prefix)
        self._known.pop(key_hash, None)

    def succeeded(self, key_hash: bytes) -> None:
        self._known[key_hash] = self._clock() + self._limits.known_ttl_s
        self._known.move_to_end(key_hash)
        if len(self._known) > self._limits.max_tracked:
            self._known.popitem(last=False)

    def _is_known(self, key_hash: bytes) -> bool:
        until = self._known.get(key_hash)
        if until is None:
            return False
        if until < self._clock():
            del self._known[key_hash]
            return False
        return True
