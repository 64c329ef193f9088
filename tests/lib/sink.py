"""A real SMTP peer on loopback (aiosmtpd; `host` another address) that keeps what it receives.

Scriptable per recipient: `rules` maps a recipient to a list of replies used in turn
(e.g. ["450 4.7.1 Greylisted, try again later", "250 OK"]), the last one repeating.
`data_delay` makes it a slow peer: seconds before each answer to DATA.
`refuse_ips` maps a client IP to the reply every RCPT from it gets (a peer that dislikes
one of our sending IPs). `tls_context` offers STARTTLS. Each message keeps the client's IP,
its HELO name and whether the session was encrypted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    at: float
    peer: str = ""
    helo: str = ""
    tls: bool = False


@dataclass
class SinkHandler:
    rules: dict[str, list[str]] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)
    refused: list[tuple[str, str, float]] = field(default_factory=list)  # (rcpt, reply, at)
    lock: threading.Lock = field(default_factory=threading.Lock)
    data_delay: float = 0.0
    refuse_ips: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.refuse_ips.get(session.peer[0])
        if refusal:
            with self.lock:
                self.refused.append((address.lower(), refusal, time.time()))
            return refusal
        replies = self.rules.get(address.lower())
        if replies:
            with self.lock:
                n = self.attempts[address.lower()]
                self.attempts[address.lower()] += 1
            reply = replies[min(n, len(replies) - 1)]
            if not reply.startswith("250"):
                with self.lock:
                    self.refused.append((address.lower(), reply, time.time()))
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append(Received(envelope.mail_from, rcpt.lower(), envelope.original_content
                                              or envelope.content, time.time(), session.peer[0],
                                              session.host_name or "", session.ssl is not None))
        return "250 2.0.0 Message accepted"


class Sink:
    def __init__(self, port: int, rules: dict[str, list[str]] | None = None, data_delay: float = 0.0,
                 refuse_ips: dict[str, str] | None = None, tls_context=None, host: str = "127.0.0.1"):
        self.handler = SinkHandler(rules=rules or {}, data_delay=data_delay, refuse_ips=refuse_ips or {})
        tls = {"tls_context": tls_context} if tls_context is not None else {}
        self.controller = Controller(self.handler, hostname=host, port=port,
                                     data_size_limit=10 * 2**20, decode_data=False, **tls)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def wait_for(self, count: int, timeout: float = 120.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.handler.messages) >= count:
                return self.messages
            time.sleep(0.2)
        return self.messages
