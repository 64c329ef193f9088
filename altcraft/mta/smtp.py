"""A small asyncio SMTP client for the MTA: one session, many messages, PIPELINING when the
peer offers it (MAIL, RCPT and DATA in one write), STARTTLS when offered and wanted, from a
chosen source address when one is given."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# The HELO name, or how to find it once the local address of the connection is known.
Helo = str | Callable[[str], Awaitable[str]]


class SMTPError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def dot_stuff(data: bytes) -> bytes:
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


class Session:
    def __init__(self, host: str, port: int, helo: Helo, timeout: float = 60.0, try_tls: bool = True,
                 source: str = ""):
        self.host, self.port, self.timeout, self.try_tls, self.source = host, port, timeout, try_tls, source
        self._helo = helo
        self.helo = helo if isinstance(helo, str) else ""
        self.tls = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.extensions: set[str] = set()

    async def _reply(self) -> Reply:
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), self.timeout)
            if not line:
                raise ConnectionError("connection closed by the peer")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text[4:])
            if len(text) < 4 or text[3] != "-":
                return Reply(int(text[:3]), " ".join(lines).strip())

    async def _command(self, line: str) -> Reply:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self._reply()

    async def _ehlo(self) -> None:
        reply = await self._command(f"EHLO {self.helo}")
        if not reply.ok:
            reply = await self._command(f"HELO {self.helo}")
            if not reply.ok:
                raise SMTPError(reply.code, reply.text)
            self.extensions = set()
            return
        self.extensions = {word.split()[0].upper() for word in reply.text.split(" ") if word}

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, local_addr=(self.source, 0) if self.source else None),
            self.timeout)
        if not isinstance(self._helo, str):
            self.helo = await self._helo(self.writer.get_extra_info("sockname")[0])
        greeting = await self._reply()
        if not greeting.ok:
            raise SMTPError(greeting.code, greeting.text)
        await self._ehlo()
        if self.try_tls and "STARTTLS" in self.extensions:
            reply = await self._command("STARTTLS")
            if reply.ok:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE  # opportunistic TLS, as MTAs do (RFC 3207)
                await self.writer.start_tls(context, server_hostname=self.host)
                self.tls = True
                await self._ehlo()

    async def send(self, mail_from: str, rcpt: str, data: bytes) -> Reply:
        """One message. Returns the final reply (the first failing one if it fails early)."""
        if "PIPELINING" in self.extensions:
            self.writer.write(f"MAIL FROM:<{mail_from}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
            await self.writer.drain()
            replies = [await self._reply() for _ in range(3)]
            mail, rcpt_reply, data_reply = replies
        else:
            mail = await self._command(f"MAIL FROM:<{mail_from}>")
            rcpt_reply = await self._command(f"RCPT TO:<{rcpt}>") if mail.ok else mail
            data_reply = await self._command("DATA") if rcpt_reply.ok else rcpt_reply
        for reply in (mail, rcpt_reply):
            if not reply.ok:
                if data_reply.code == 354:  # pipelined DATA was accepted anyway: end it empty
                    await self._command(".")
                await self._command("RSET")
                return reply
        if data_reply.code != 354:
            await self._command("RSET")
            return data_reply
        self.writer.write(dot_stuff(data))
        await self.writer.drain()
        return await self._reply()

    async def close(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.writer.drain(), 5)
            await asyncio.wait_for(self._reply(), 5)
        except Exception:
            pass
        finally:
            self.writer.close()
