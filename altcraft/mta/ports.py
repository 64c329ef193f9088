"""What the delivery engine needs from the outside world, as small interfaces: akmtad passes
the real ones (Redis, RabbitMQ, sockets, DNS), the unit tests pass fakes."""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import Awaitable, Callable
from typing import Protocol

from altcraft.mta.smtp import Helo, Reply
from altcraft.mta.spool import Meta


class Clock(Protocol):
    def time(self) -> float:
        """Epoch seconds: when a retry or a lock is due (kept in the spool, so wall time)."""

    def monotonic(self) -> float:
        """For caches and rate limits, which must not jump with the wall clock."""

    def sleep(self, seconds: float) -> Awaitable[None]: ...


class SystemClock:
    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
    sleep = staticmethod(asyncio.sleep)


class SmtpSession(Protocol):
    """One SMTP connection (altcraft.mta.smtp.Session is the real one)."""
    helo: str

    async def connect(self) -> None: ...

    async def send(self, mail_from: str, rcpt: str, data: bytes) -> Reply: ...

    async def close(self) -> None: ...


class SessionFactory(Protocol):
    def __call__(self, host: str, port: int, helo: Helo, *, try_tls: bool, source: str) -> SmtpSession: ...


class Resolver(Protocol):
    def mx(self, domain: str) -> str:
        """The preferred MX host of the domain, or the domain itself when it has none."""

    async def ptr(self, ip: str) -> str | None:
        """The PTR name of an address, None when it has none."""


class DoneKeys(Protocol):
    async def mark_done(self, message_id: str) -> None:
        """Remembers that the message was delivered (read by intake and recovery)."""


class Spool(Protocol):
    """The part of altcraft.mta.spool.Spool the engine uses."""

    def read(self, message_id: str) -> tuple[Meta, bytes]: ...

    def update(self, meta: Meta) -> None: ...

    def remove(self, message_id: str) -> None: ...

