"""Turns a template and one profile into the bytes of one e-mail.

Per message: render the parts, rewrite every http(s) link into a signed click-tracking link,
add the open pixel and an unsubscribe link, set List-Unsubscribe and List-Unsubscribe-Post
(RFC 8058), and assemble MIME. Assembled by hand (base64 parts, CRLF): this runs once per
recipient and the stdlib email package costs several times more. `render_webversion` gives
the HTML part again, from the same code, for the web version (/w).
"""

from __future__ import annotations

import base64
import html as htmllib
import re
import time
import uuid
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate
from typing import Any

from altcraft.domain import tracking
from altcraft.domain.fields import to_altcraft
from altcraft.domain.templates import render_parts

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Envelope:
    """Who the message is from, and what its tracking links name."""

    account_id: int
    db_id: int
    resource_id: int
    campaign_id: int
    launch: int
    from_email: str
    from_name: str = ""
    reply_to: str = ""
    tracking_base: str = "http://127.0.0.1:8095"
    tracking_key: str = ""


@dataclass(frozen=True)
class Rendered:
    message_id: str
    rcpt: str
    data: bytes


def message_id(envelope: Envelope, profile_id: str) -> str:
    """Stable per campaign launch and profile: a re-send of the same message has the same id,
    which is what lets the MTA drop a duplicate."""
    return f"{envelope.campaign_id}.{envelope.launch}.{profile_id}"


def _link(envelope: Envelope, profile_id: str, kind: str, link_id: int = 0, url: str = "",
          issued: int = 0) -> str:
    return tracking.url(envelope.tracking_base, tracking.Link(
        kind, envelope.account_id, envelope.db_id, envelope.resource_id, envelope.campaign_id,
        profile_id, link_id, url, issued), envelope.tracking_key)


def rewrite_links(html: str, make_url) -> str:
    """Replaces each http(s) href with make_url(link_id, url); link ids number the distinct
    URLs of the message in order of appearance."""
    ids: dict[str, int] = {}

    def replace(match: re.Match) -> str:
        target = htmllib.unescape(match.group(3).strip())
        if not target.lower().startswith(("http://", "https://")):
            return match.group(0)
        link_id = ids.setdefault(target, len(ids) + 1)
        return f"{match.group(1)}{match.group(2)}{htmllib.escape(make_url(link_id, target))}{match.group(2)}"

    return _HREF.sub(replace, html)


def _header(value: str) -> str:
    return value if value.isascii() else Header(value, "utf-8").encode()


def _b64(text: str) -> bytes:
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


def webversion_link_id(launch: int) -> int:
    """What a web-version token carries in its link field: the launch the message belongs to,
    so /w shows the template that launch sent (0, "the latest", beyond the u16 range)."""
    return launch if 0 < launch <= 0xFFFF else 0


def _context(envelope: Envelope, profile: dict[str, Any], issued: int,
             extra: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The unsubscribe URL and the template variables of one message (`extra`: a trigger's
    `data` object, which wins over a profile field of the same name)."""
    data = profile.get("data", {})
    profile_id = profile["_id"]
    unsubscribe = _link(envelope, profile_id, "unsubscribe", issued=issued)
    return unsubscribe, {  # Altcraft's field names too ({{ _fname }}), ours win
        **to_altcraft(data), **data, "profile": data, "unsubscribe_url": unsubscribe,
        "manage_url": _link(envelope, profile_id, "manage", issued=issued),
        "webversion_url": _link(envelope, profile_id, "webversion", webversion_link_id(envelope.launch),
                                issued=issued), **(extra or {})}


def _html(html_part: str, envelope: Envelope, profile_id: str, issued: int, unsubscribe: str,
          pixel: bool = True) -> str:
    """Click-tracking links, the unsubscribe link if the template has none, the open pixel."""
    html_part = rewrite_links(html_part, lambda i, u: _link(envelope, profile_id, "click", i, u, issued))
    extra = ""
    if unsubscribe not in html_part:
        extra += f'<p style="font-size:11px"><a href="{htmllib.escape(unsubscribe)}">Unsubscribe</a></p>'
    if pixel:
        extra += (f'<img src="{htmllib.escape(_link(envelope, profile_id, "open", issued=issued))}" '
                  'width="1" height="1" alt="" style="display:block;border:0">')
    return _BODY_END.sub(lambda m: extra + m.group(0), html_part, count=1) \
        if _BODY_END.search(html_part) else html_part + extra


def render_webversion(compiled: dict[str, Any], envelope: Envelope, profile: dict[str, Any],
                      issued: int) -> str:
    """The HTML page of the web version: the message's HTML part exactly as the e-mail had it
    when rendered with the same `issued` (the time in the web-version token), so every link
    is the e-mail's own signed link and a click on it counts as a click, except the open
    pixel (viewing the web version records nothing). A text-only message is shown as
    preformatted text."""
    unsubscribe, context = _context(envelope, profile, issued)
    parts = render_parts(compiled, context)
    if parts.get("html"):
        return _html(parts["html"], envelope, profile["_id"], issued, unsubscribe, pixel=False)
    text = parts.get("text", "")
    if unsubscribe not in text:
        text += f"\n\nUnsubscribe: {unsubscribe}\n"
    return ('<!doctype html><html><head><meta charset="utf-8"><title>'
            f'{htmllib.escape(parts.get("subject", ""))}</title></head><body>'
            f'<pre style="white-space:pre-wrap">{htmllib.escape(text)}</pre></body></html>')


def render_preview(compiled: dict[str, Any], envelope: Envelope, profile: dict[str, Any]) -> dict[str, str]:
    """One profile's subject, HTML and text as the message would carry them (its links
    signed, the unsubscribe link added), without the open pixel: looking at a preview is
    not an open. Invalid (naming the part) when the template fails for this profile."""
    issued = int(time.time())
    unsubscribe, context = _context(envelope, profile, issued)
    parts = render_parts(compiled, context)
    if parts.get("html"):
        parts["html"] = _html(parts["html"], envelope, profile["_id"], issued, unsubscribe, pixel=False)
    return parts


# A test send's subject starts with this, so nobody takes it for the campaign itself.
TEST_MARK = "[test]"


def render_test(compiled: dict[str, Any], envelope: Envelope, profile: dict[str, Any], rcpt: str) -> Rendered:
    """A test send: the message exactly as `profile` would get it, addressed to `rcpt`
    instead, its subject starting with TEST_MARK, with an id of its own (each test send is
    delivered; none is taken for a duplicate of another)."""
    return render(compiled, envelope, profile, rcpt=rcpt, subject_prefix=f"{TEST_MARK} ",
                  mid=f"test.{uuid.uuid4().hex}")


def render(compiled: dict[str, Any], envelope: Envelope, profile: dict[str, Any], *,
           rcpt: str | None = None, subject_prefix: str = "", mid: str | None = None,
           extra: dict[str, Any] | None = None) -> Rendered:
    """`rcpt`: another address than the profile's (a test send); `mid`: a message id made
    by the caller (trigger sends derive theirs, domain/triggers.py; a test send its own),
    else the launch's `message_id`; `extra`: more template variables."""
    data = profile.get("data", {})
    profile_id = profile["_id"]
    issued = int(time.time())
    unsubscribe, context = _context(envelope, profile, issued, extra)
    parts = render_parts(compiled, context)
    if subject_prefix:
        parts["subject"] = subject_prefix + parts.get("subject", "")
    html_part, text_part = parts.get("html", ""), parts.get("text", "")
    if html_part:
        html_part = _html(html_part, envelope, profile_id, issued, unsubscribe)
    if text_part and unsubscribe not in text_part:
        text_part += f"\r\n\r\nUnsubscribe: {unsubscribe}\r\n"

    rcpt = rcpt or data["email"]
    mid = mid or message_id(envelope, profile_id)
    domain = envelope.from_email.rsplit("@", 1)[-1]
    boundary = f"=_ak_{uuid.uuid4().hex}"
    headers = [
        f"From: {formataddr((_header(envelope.from_name), envelope.from_email)) if envelope.from_name else envelope.from_email}",
        f"To: {rcpt}",
        f"Subject: {_header(parts.get('subject', ''))}",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: <{mid}@{domain}>",
        "MIME-Version: 1.0",
        f"List-Unsubscribe: <{unsubscribe}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        f"X-AK-Campaign: {envelope.account_id}.{envelope.campaign_id}.{envelope.launch}",
    ]
    if envelope.reply_to:
        headers.append(f"Reply-To: {envelope.reply_to}")
    body_parts = [(ctype, body) for ctype, body in (("text/plain", text_part), ("text/html", html_part)) if body]
    if len(body_parts) == 1:
        ctype, body = body_parts[0]
        headers += [f"Content-Type: {ctype}; charset=utf-8", "Content-Transfer-Encoding: base64"]
        raw = ("\r\n".join(headers) + "\r\n\r\n").encode() + _b64(body)
    else:
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        chunks = [("\r\n".join(headers) + "\r\n\r\n").encode()]
        for ctype, body in body_parts:
            chunks.append(f"--{boundary}\r\nContent-Type: {ctype}; charset=utf-8\r\n"
                          "Content-Transfer-Encoding: base64\r\n\r\n".encode() + _b64(body))
        chunks.append(f"--{boundary}--\r\n".encode())
        raw = b"".join(chunks)
    return Rendered(mid, rcpt, raw)
