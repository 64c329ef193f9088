"""How a session introduces itself, by the strategy's HELO: "" the host (MTA.HELO), "ptr" the
sending IP's PTR name, "domain" the sender's From domain, "ip" the sending IP as an address
literal. For "ptr" and "ip" without a configured sending IP, the connection's own local
address is used once it is known."""

from __future__ import annotations

import logging

from altcraft.mta import rules
from altcraft.mta.ports import Clock, Resolver
from altcraft.mta.smtp import Helo

log = logging.getLogger("altcraft.akmtad")
PTR_TTL_SECONDS = 3600


class HeloNames:
    def __init__(self, host_name: str, resolver: Resolver, clock: Clock):
        self.host_name = host_name
        self.resolver = resolver
        self.clock = clock
        self.ptr_names: dict[str, tuple[float, str]] = {}  # IP -> (until, HELO name)

    def for_session(self, mode: str, ip: str, from_email: str) -> Helo:
        if mode == "domain":
            return from_email.rpartition("@")[2] or self.host_name
        if mode == "ip":
            async def literal(local: str) -> str:
                return rules.address_literal(ip or local)
            return literal
        if mode == "ptr":
            async def ptr(local: str) -> str:
                return await self.ptr_name(ip or local)
            return ptr
        return self.host_name

    async def ptr_name(self, ip: str) -> str:
        cached = self.ptr_names.get(ip)
        if cached and cached[0] > self.clock.monotonic():
            return cached[1]
        name = await self.resolver.ptr(ip)
        if not name:
            log.warning("no PTR name for %s: HELO uses the address literal", ip)
            name = rules.address_literal(ip)
        self.ptr_names[ip] = (self.clock.monotonic() + PTR_TTL_SECONDS, name)
        return name
