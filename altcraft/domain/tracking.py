"""Signed tracking tokens: what a click, open or unsubscribe link carries.

A token names the account, profile database, subscription resource, campaign, profile and
(for clicks) the link and its target URL, plus when it was issued, all under an HMAC-SHA256
with TRACKING_CRYPT_KEY. The target URL is inside the signed token, so the redirect needs no
lookup and can only ever go where the message pointed: a changed character anywhere makes
the token invalid, and nothing is recorded for it.

Layout before base64url (no padding): payload | MAC[:16]
  payload = version u8 | kind u8 | account u32 | db u32 | resource u32 | campaign u64 |
            profile 16 bytes (uuid) | link u16 | issued u32 (unix seconds) | url (utf-8, clicks)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time
from dataclasses import dataclass
from typing import Literal

Kind = Literal["click", "open", "unsubscribe", "webversion", "manage"]
# Path of each kind under the tracking base URL (served by trkaction).
PATHS: dict[str, str] = {"click": "c", "open": "o", "unsubscribe": "u", "webversion": "w", "manage": "m"}
_KINDS: tuple[Kind, ...] = ("click", "open", "unsubscribe", "webversion", "manage")
_VERSION = 1
_HEAD = struct.Struct(">BBIIIQ16sHI")
_MAC_BYTES = 16
DEFAULT_TTL = 400 * 86400
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")  # a little over a year: old newsletters still get clicked


class InvalidToken(ValueError):
    """Tampered, truncated, expired or not a token at all. Carries no detail on purpose."""


@dataclass(frozen=True)
class Link:
    kind: Kind
    account_id: int
    db_id: int
    resource_id: int
    campaign_id: int
    profile_id: str  # 32 hex characters
    link_id: int = 0
    url: str = ""
    issued: int = 0


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def sign(link: Link, key: str, now: float | None = None) -> str:
    issued = link.issued or int(now if now is not None else time.time())
    payload = _HEAD.pack(_VERSION, _KINDS.index(link.kind), link.account_id, link.db_id,
                         link.resource_id, link.campaign_id, bytes.fromhex(link.profile_id),
                         link.link_id, issued) + link.url.encode("utf-8")
    return base64.urlsafe_b64encode(payload + _mac(key.encode(), payload)).rstrip(b"=").decode("ascii")


def verify(token: str, key: str, ttl: int = DEFAULT_TTL, now: float | None = None) -> Link:
    # base64 decoding skips characters outside its alphabet; a token must not carry any
    if not isinstance(token, str) or not _ALPHABET.fullmatch(token):
        raise InvalidToken("not a token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("not a token") from None
    if len(raw) < _HEAD.size + _MAC_BYTES:
        raise InvalidToken("not a token")
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(key.encode(), payload)):
        raise InvalidToken("bad signature")
    version, kind, account, db, resource, campaign, profile, link_id, issued = _HEAD.unpack_from(payload)
    if version != _VERSION or kind >= len(_KINDS):
        raise InvalidToken("unknown version")
    current = now if now is not None else time.time()
    if issued > current + 300 or current - issued > ttl:
        raise InvalidToken("expired")
    try:
        url = payload[_HEAD.size:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidToken("bad url") from None
    return Link(_KINDS[kind], account, db, resource, campaign, profile.hex(), link_id, url, issued)


def url(base_url: str, link: Link, key: str, now: float | None = None) -> str:
    """The public URL of a tracking link: <base>/<c|o|u|w|m>/<token> (the pixel ends in .gif)."""
    suffix = ".gif" if link.kind == "open" else ""
    return f"{base_url.rstrip('/')}/{PATHS[link.kind]}/{sign(link, key, now)}{suffix}"
