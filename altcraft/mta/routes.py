"""Where a message goes: the route (next hop, ISP, sending IP, sender) its session serves,
and the next hop of a domain: a static route, the sender's relay, or the MX host."""

from __future__ import annotations

from typing import NamedTuple

from altcraft.mta.ports import Clock, Resolver

MX_TTL_SECONDS = 300


class Pool(NamedTuple):
    """Sessions share a pool per next hop, ISP and sending IP: CONNECTIONS counts per pool."""
    host: str
    port: int
    isp: str
    ip: str


class Route(NamedTuple):
    """A ready queue's key: an ISP's strategy and locks apply to its own queues, a session
    sends from one IP with one HELO, and one sender's messages (a sender can be held)."""
    host: str
    port: int
    isp: str
    ip: str
    sender_id: int

    @property
    def pool(self) -> Pool:
        return Pool(self.host, self.port, self.isp, self.ip)


class Routes:
    """The next hop of a recipient domain: MTA.ROUTES (the domain, else "*"), else the
    sender's relay, else the domain's MX (cached for five minutes)."""

    def __init__(self, static: dict[str, str], resolver: Resolver, clock: Clock):
        self.static = static
        self.resolver = resolver
        self.clock = clock
        self.cache: dict[str, tuple[float, tuple[str, int]]] = {}

    def next_hop(self, domain: str, relay: str = "") -> tuple[str, int]:
        target = self.static.get(domain) or self.static.get("*") or relay
        if target:
            host, _, port = target.rpartition(":")
            return host, int(port)
        cached = self.cache.get(domain)
        if cached and cached[0] > self.clock.monotonic():
            return cached[1]
        result = (self.resolver.mx(domain), 25)
        self.cache[domain] = (self.clock.monotonic() + MX_TTL_SECONDS, result)
        return result
