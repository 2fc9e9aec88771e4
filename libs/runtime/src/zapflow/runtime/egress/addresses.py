"""Which IP addresses an outbound call to a tenant- or payload-chosen URL may reach.

Pure classification, no I/O. :func:`forbidden_class` names the class of an address the guard
refuses, or returns None for a public unicast address:

============== =====================================================================================
class          networks
============== =====================================================================================
unspecified    ``0.0.0.0/8``, ``::/128``
loopback       ``127.0.0.0/8``, ``::1/128``
private        RFC 1918 (``10/8``, ``172.16/12``, ``192.168/16``), ULA ``fc00::/7``,
               local-use NAT64 ``64:ff9b:1::/48``
link-local     ``169.254.0.0/16``, ``fe80::/10``
metadata       cloud metadata endpoints: ``169.254.169.254``, ``169.254.170.2``, ``fd00:ec2::254``,
               ``100.100.100.200``, ``192.0.0.192`` (named apart from their class for clearer logs)
shared         carrier-grade NAT ``100.64.0.0/10``
multicast      ``224.0.0.0/4``, ``ff00::/8``
reserved       IETF/documentation/benchmark ranges (``192.0.0.0/24``, ``192.0.2.0/24``,
               ``192.88.99.0/24``, ``198.18.0.0/15``, ``198.51.100.0/24``, ``203.0.113.0/24``,
               ``240.0.0.0/4`` with the broadcast address, ``::/96``, ``100::/64``,
               ``2001::/23``, ``2001:db8::/32``, ``3fff::/20``, ``fec0::/10``), and every IPv6
               address outside global unicast ``2000::/3``
============== =====================================================================================

IPv6 forms that carry an IPv4 address are judged by that address: IPv4-mapped
(``::ffff:a.b.c.d``), NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``), so ``::ffff:127.0.0.1``
is loopback and ``64:ff9b::a9fe:a9fe`` is metadata.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
"""AWS/GCP/Azure/OCI (``169.254.169.254``), ECS task credentials, AWS IPv6, Alibaba, OCI."""

METADATA_NAMES: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
    }
)
"""Host names of cloud metadata services, refused before any lookup."""


def _networks(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), name) for net, name in pairs)


_V4: Final = _networks(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V6: Final = _networks(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved"),  # IPv4-compatible (deprecated)
    ("64:ff9b:1::/48", "private"),
    ("100::/64", "reserved"),
    ("2001:db8::/32", "reserved"),
    ("2001::/23", "reserved"),
    ("3fff::/20", "reserved"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved"),
    ("ff00::/8", "multicast"),
)
_GLOBAL_UNICAST_V6: Final = ipaddress.IPv6Network("2000::/3")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 IPv6 address stands for, else itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return address


def forbidden_class(address: IPAddress) -> str | None:
    """The class that makes ``address`` unreachable for tenant-chosen URLs, or None if public."""
    address = embedded_ipv4(address)
    if address in METADATA_ADDRESSES:
        return "metadata"
    table = _V4 if isinstance(address, ipaddress.IPv4Address) else _V6
    for network, name in table:
        if address in network:
            return name
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return None


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (brackets and an IPv6 zone allowed), or None for a name."""
    text = text.strip().strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
