"""Which network addresses a feed fetch may reach: the rule against server-side request forgery.

Invariants:
- The host an admin configured is trusted as configured, whatever its address (an intranet
  feed on 10.0.0.5 is fine) — with one exception: a link-local address (169.254.0.0/16 with
  the cloud metadata service at 169.254.169.254, fe80::/10) only when the source's URL names
  that address itself, so a configured name that DNS points there later is refused.
- A redirect to another host may not lead to a loopback, private, link-local, unique-local,
  multicast, unspecified or otherwise non-public address, unless ``[collect]
  allow_private_redirects = true``; link-local stays refused even then.
- Each rule is checked twice: on the addresses DNS gives before connecting (so no request is
  sent to a refused address), and on the address the connection actually reached (so a DNS
  answer that changes between the two — DNS rebinding — cannot slip past).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from digest.errors import SourceError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

HINT_PRIVATE = ("a feed's redirect may not lead to an internal address; if this source really "
                "moved there, name the new address in the source's url, or set [collect] "
                "allow_private_redirects = true")
HINT_LINK_LOCAL = ("link-local and cloud-metadata addresses are never fetched unless the "
                   "source's url names the address itself")


def kind_of(address: Address) -> str:
    """What kind of non-public address this is, or "" for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind, flag in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                       ("link-local", address.is_link_local),
                       ("multicast", address.is_multicast)):
        if flag:
            return kind
    if isinstance(address, ipaddress.IPv6Address) and address in UNIQUE_LOCAL:
        return "unique-local"
    if address.is_private:
        return "private"
    return "" if address.is_global else "reserved"


UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


def literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[Address]:
    """Every address DNS gives for ``host`` (what the connection may go to)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []    # the connection attempt will fail and say why
    found = []
    for info in infos:
        address = literal(str(info[4][0]))
        if address is not None:
            found.append(address)
    return found


@dataclass(frozen=True)
class AddressRule:
    """The rule for one source: ``configured_url`` is the url in its config."""

    configured_url: str
    allow_private_redirects: bool = False

    @property
    def configured_host(self) -> str:
        return (urlsplit(self.configured_url).hostname or "").lower()

    def _names_link_local(self, address: Address) -> bool:
        named = literal(self.configured_host)
        return named is not None and named == address

    def refusal(self, url: str, address: Address) -> SourceError | None:
        """Why ``url``, reached at ``address``, may not be fetched; None when it may."""
        kind = kind_of(address)
        if not kind:
            return None
        if kind == "link-local" and not self._names_link_local(address):
            return SourceError(f"refused to fetch {url}: it leads to {address}, a link-local "
                               "address (such as the cloud metadata service)",
                               hint=HINT_LINK_LOCAL)
        host = (urlsplit(url).hostname or "").lower()
        if host == self.configured_host or self.allow_private_redirects or kind == "link-local":
            return None
        return SourceError(f"refused to follow a redirect to {url}: it leads to {address}, "
                           f"a {kind} address", hint=HINT_PRIVATE)

    def check_before(self, url: str) -> None:
        """Refuse ``url`` before connecting when DNS (or the url itself) says it is off limits."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        address = literal(host)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        for candidate in [address] if address is not None else resolve(host, port):
            refusal = self.refusal(url, candidate)
            if refusal is not None:
                raise refusal

    def check_connected(self, url: str, peer: str | None) -> None:
        """Refuse a response whose connection went to an address off limits for ``url``."""
        address = literal(peer) if peer else None
        if address is not None:
            refusal = self.refusal(url, address)
            if refusal is not None:
                raise refusal
