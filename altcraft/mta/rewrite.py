"""What an ISP asks of the messages sent to it, applied before they are signed: header
overrides (set, or remove with an empty value) and the transfer encoding of text parts
(quoted-printable, base64 or 8bit). Attachments keep their encoding.

8bit is applied only where it is legal: a part with a line longer than 998 octets
(RFC 5322 2.1.1) becomes quoted-printable instead.
"""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
from email.message import Message

MAX_LINE = 998


def apply(data: bytes, encoding: str = "", headers: dict[str, str] | None = None) -> bytes:
    if not encoding and not headers:
        return data
    message = email.message_from_bytes(data, policy=email.policy.SMTP)
    for name, value in (headers or {}).items():
        del message[name]
        if value:
            message[name] = value
    if encoding:
        for part in message.walk():
            if not part.is_multipart() and part.get_content_maintype() == "text":
                _reencode(part, encoding)
    return message.as_bytes(policy=email.policy.SMTP)


def _reencode(part: Message, encoding: str) -> None:
    body = part.get_payload(decode=True) or b""
    body = body.replace(b"\r\n", b"\n")
    if encoding == "8bit" and any(len(line) > MAX_LINE for line in body.split(b"\n")):
        encoding = "quoted-printable"
    if encoding == "base64":
        text = base64.encodebytes(body).decode("ascii")
    elif encoding == "quoted-printable":
        text = quopri.encodestring(body).decode("ascii")
    else:  # 8bit: the bytes as they are; surrogateescape keeps them byte for byte on output
        text = body.decode("ascii", "surrogateescape")
    del part["Content-Transfer-Encoding"]
    part["Content-Transfer-Encoding"] = encoding
    part.set_payload(text)
