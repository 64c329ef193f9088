"""Which addresses an outgoing request (a webhook) may reach.

A webhook URL is typed by an account's user, so without a guard it is a way into the
operator's network: the platform's own stores on loopback, the metadata service on a
link-local address, hosts of a private subnet. Every address a name resolves to is checked
(a name with one public and one private address is refused), and the caller connects to the
checked address itself, so that a second resolution cannot answer differently (DNS
rebinding). The operator may open networks in main.json (WEBHOOKS.ALLOW_NETWORKS).

The resolver is passed in: the processes hand in `system_resolve`, unit tests a fake.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses the name resolves to, as text
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL_LENGTH = 2048


class Refused(ValueError):
    """The URL or one of its addresses may not be reached; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: connect to `address`, speak to `host` (Host header, TLS name)."""
    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query, as sent in the request line


def system_resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs as main.json writes them; raises ValueError naming the first bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r}: not a network in CIDR notation (e.g. 10.1.0.0/16)") from None
    return tuple(networks)


def why_blocked(address: IPAddress) -> str | None:
    """The reason an address is not reachable by default, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return why_blocked(address.ipv4_mapped)  # ::ffff:127.0.0.1 is loopback
    for reason, test in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                         ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                         ("reserved", address.is_reserved), ("private", address.is_private)):
        if test:
            return reason
    if not address.is_global:  # 100.64.0.0/10 (carrier-grade NAT), 6to4 relays, ...
        return "non-global"
    return None


class AddressPolicy:
    def __init__(self, allow: Iterable[IPNetwork] = ()):
        self.allow = tuple(allow)

    def check_address(self, text: str) -> IPAddress:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone index is not part of it
        reason = why_blocked(address)
        if reason and not any(address.version == net.version and address in net for net in self.allow):
            article = "an" if reason[0] in "aeiou" else "a"
            raise Refused(f"{address} is {article} {reason} address (allow its network in main.json "
                          "WEBHOOKS.ALLOW_NETWORKS to reach it)")
        return address

    def target(self, url: str, resolve: Resolver) -> Target:
        """Checks the URL and every address of its host; raises Refused naming the reason."""
        scheme, host, port, path = split_url(url)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = list(dict.fromkeys(resolve(host, port)))
            except OSError as exc:
                raise Refused(f"{host} does not resolve ({exc.strerror or exc})") from None
            if not addresses:
                raise Refused(f"{host} does not resolve")
        checked = [self.check_address(a) for a in addresses]  # every one, not just the first
        return Target(scheme, host, port, str(checked[0]), path)


def split_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path+query) of an http(s) URL; raises Refused naming the problem."""
    if not isinstance(url, str) or not url:
        raise Refused("empty URL")
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise Refused("contains white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("the scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise Refused("credentials in the URL are not allowed (put a token in the path or query)")
    if not parts.hostname:
        raise Refused("no host")
    if parts.fragment:
        raise Refused("a fragment (#...) is not sent; remove it")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path
