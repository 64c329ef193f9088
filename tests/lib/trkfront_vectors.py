"""Test vectors for the compiled tracking front (native/trkfront), written from the Python
implementation: tokens (tracking.verify), the bot check (botfilter), event bodies
(events.action), journal lines (trk/journal.py) and whole requests (trk/app.TrackingApp).

    .venv/bin/python -m tests.lib.trkfront_vectors     writes native/trkfront/testdata/*.json

The Go tests read these files; tests/unit/test_trkfront_vectors.py checks that the committed
files are what this module makes from the current Python code, so neither implementation
can change without the other's tests failing.
"""

from __future__ import annotations

import base64
import json
import random
import sys
from pathlib import Path
from unittest import mock

from altcraft import registry
from altcraft.config import validate
from altcraft.domain import botfilter, events, tracking
from altcraft.domain.tracking import InvalidToken, Link, sign, verify
from altcraft.services.trk import journal
from altcraft.services.trk.app import TrackingApp

TESTDATA = Path(__file__).resolve().parents[2] / "native" / "trkfront" / "testdata"
KEY = "vectors-key-" + "k" * 28
NOW = 1_780_000_000.375  # a fixed clock: tokens are signed and checked against it
TTL = tracking.DEFAULT_TTL
PROFILE = "0123456789abcdef0123456789abcdef"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def _link(kind="click", url="https://shop.example/landing?p=1", issued=int(NOW) - 600, **kw) -> Link:
    fields = dict(account_id=1, db_id=2, resource_id=3, campaign_id=77, profile_id=PROFILE,
                  link_id=2 if kind == "click" else 0)
    fields.update(kw)
    return Link(kind, url=url if kind == "click" else "", issued=issued, **fields)


def _raw_token(payload: bytes, key: str = KEY) -> str:
    """A token of any payload, correctly signed (for version, kind and URL checks)."""
    return base64.urlsafe_b64encode(payload + tracking._mac(key.encode(), payload)).rstrip(b"=").decode()


def _flip(token: str, at: int) -> str:
    """One character changed (to another of the alphabet)."""
    c = token[at]
    return token[:at] + ("B" if c == "A" else "A") + token[at + 1:]


def _link_json(link: Link | None) -> dict | None:
    if link is None:
        return None
    return {"kind": link.kind, "account_id": link.account_id, "db_id": link.db_id, "resource_id": link.resource_id,
            "campaign_id": link.campaign_id, "profile_id": link.profile_id, "link_id": link.link_id,
            "url": link.url, "issued": link.issued}


def tokens() -> dict:
    good = sign(_link(), KEY)
    head = tracking._HEAD
    cases = {
        "click": good,
        "open": sign(_link("open"), KEY),
        "unsubscribe": sign(_link("unsubscribe"), KEY),
        "big numbers": sign(_link(account_id=2**32 - 1, db_id=2**32 - 1, resource_id=2**32 - 1,
                                  campaign_id=2**64 - 1, link_id=2**16 - 1), KEY),
        "non-ascii url": sign(_link(url="https://shop.example/путь?q=ü €"), KEY),
        "tampered first": _flip(good, 0),
        "tampered middle": _flip(good, len(good) // 2),
        "tampered url": _flip(good, 70),
        "tampered mac": _flip(good, len(good) - 3),
        "other key": sign(_link(), KEY + "x"),
        "truncated": good[:-4],
        "too short": good[:70],
        "length 4n+1": good + "A" * ((1 - len(good)) % 4 or 4),
        "padding": good + "=",
        "outside the alphabet": good[:10] + "+" + good[11:],
        "expired": sign(_link(issued=int(NOW) - TTL - 1), KEY),
        "oldest still valid": sign(_link(issued=int(NOW) - TTL + 1), KEY),
        "from the future": sign(_link(issued=int(NOW) + 301), KEY),
        "slightly ahead": sign(_link(issued=int(NOW) + 299), KEY),
        "version 2": _raw_token(head.pack(2, 0, 1, 2, 3, 77, bytes.fromhex(PROFILE), 2, int(NOW)) + b"https://x.example/"),
        "kind 5": _raw_token(head.pack(1, 5, 1, 2, 3, 77, bytes.fromhex(PROFILE), 2, int(NOW))),
        "url not utf-8": _raw_token(head.pack(1, 0, 1, 2, 3, 77, bytes.fromhex(PROFILE), 2, int(NOW)) + b"https://x/\xff"),
        "url a surrogate": _raw_token(head.pack(1, 0, 1, 2, 3, 77, bytes.fromhex(PROFILE), 2, int(NOW)) + b"https://x/\xed\xa0\x80"),
        "empty": "",
    }
    # every character changed once (the payload, the URL, each MAC byte; a change that only
    # touches the last character's unused bits still verifies, in both)
    for at in range(len(good)):
        cases[f"changed at {at}"] = _flip(good, at)
    # every byte of the signed token changed once, alone (each payload byte, each MAC byte)
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    for at in range(len(raw)):
        changed = raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1:]
        cases[f"byte {at} changed"] = base64.urlsafe_b64encode(changed).rstrip(b"=").decode()
    # the last character of a token of 3n+1 bytes carries 2 unused bits: Python ignores them
    for url in ("https://a.example/", "https://ab.example/", "https://abc.example/"):
        t = sign(_link(url=url), KEY)
        if len(t) % 4 == 2:
            last = t[-1]
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            cases["unused bits set"] = t[:-1] + alphabet[alphabet.index(last) | 1]
            break
    out = []
    for name, token in cases.items():
        try:
            link = verify(token, KEY, TTL, now=NOW)
        except InvalidToken:
            link = None
        out.append({"name": name, "token": token, "link": _link_json(link)})
    return {"key": KEY, "ttl": TTL, "now": NOW, "cases": out}


def bots() -> dict:
    agents = [BROWSER, "", "   ", "Mozilla/5.0", " Mozilla/5.0 ", "Barracuda Sentinel", "Mozilla/5.0 (compatible; Proofpoint)",
              "Microsoft Office Existence Discovery", "Googlebot/2.1", "SomeBot", "my-slackbot", "Bot Thing",
              "curl/8.0", "python-requests/2.31", "Mozilla/5.0 HeadlessChrome/120", "WhatsApp/2.0",
              "GoogleImageProxy", "YahooMailProxy", "Mozilla/5.0 (X11) PREVIEW", "\u00c0BOT", "x\u00a0",
              "\x1cMozilla/5.0\x1f", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Trend Micro", "robot"]
    ips = ["192.0.2.7", "17.58.1.1", "17.0.0.0", "::ffff:17.1.2.3", "2620:149::1", "017.1.1.1", "18.0.0.1", ""]
    cases = []
    for kind in ("click", "open"):
        for method in ("GET", "HEAD"):
            for ua in agents:
                cases.append((kind, method, ua, "192.0.2.7", int(NOW) - 600, NOW))
        for ip in ips:
            cases.append((kind, "GET", BROWSER, ip, int(NOW) - 600, NOW))
            cases.append((kind, "GET", "Mozilla/5.0", ip, int(NOW) - 600, NOW))
        for age in (-1, 0, 0.5, 1.999, 2, 3):
            cases.append((kind, "GET", BROWSER, "192.0.2.7", int(NOW), int(NOW) + age))
        cases.append((kind, "GET", BROWSER, "192.0.2.7", 0, NOW))
    return {
        "scanners": [{"reason": reason, "needles": list(needles)} for reason, needles in botfilter._SCANNERS],
        "click_after_signing": botfilter.CLICK_AFTER_SIGNING,
        "cases": [{"kind": k, "method": m, "user_agent": ua, "ip": ip, "issued": issued, "now": now,
                   "reason": botfilter.classify(k, m, ua, ip, issued, now)} for k, m, ua, ip, issued, now in cases],
    }


def event_cases() -> dict:
    long_ua = "Mozilla/5.0 " + "é" * 2050
    texts = [BROWSER, "", 'quote " backslash \\ slash /', "tab\tnl\ncr\rbs\bff\f\x01\x1f", "del\x7f",
             "latin-1 \u00c0\u00ff", "cyrillic путь", "emoji \U0001F600 and \u2028", long_ua]
    cases = []
    for i, text in enumerate(texts):
        for kind in ("click", "open"):
            link = _link(kind, url=f"https://shop.example/{text}" if kind == "click" else "",
                         account_id=i + 1, campaign_id=2**64 - 1 - i)
            random.seed(i * 2 + (kind == "open"))
            now = NOW + i * 0.0015
            event_id, routing_key, body = events.action(link, kind, ip="192.0.2.7" if i % 2 else "::1",
                                                        user_agent=text, is_bot=bool(i % 3),
                                                        bot_reason="crawler" if i % 3 else "", now=now)
            cases.append({"link": _link_json(link), "kind": kind, "ip": "192.0.2.7" if i % 2 else "::1",
                          "user_agent": text, "bot_reason": "crawler" if i % 3 else "", "millis": int(now * 1000),
                          "event_id": event_id, "routing_key": routing_key, "body": body.decode("ascii")})
    return {"cases": cases}


def journal_cases() -> dict:
    lines = []
    for i, (rk, kind) in enumerate((("action.click", "click"), ("action.open", "open"))):
        random.seed(100 + i)
        event_id, routing_key, body = events.action(_link(kind), kind, ip="192.0.2.7", user_agent=BROWSER, now=NOW)
        line = journal.encode_line(routing_key, body, event_id)
        assert journal.decode_line(line.rstrip(b"\n")) == (routing_key, body, event_id)
        lines.append({"routing_key": routing_key, "id": event_id, "body": body.decode(), "line": line.decode()})
    names = ["1234.0.jsonl", "1234.17.jsonl", "1234.jsonl", "x.0.jsonl", "99.x.jsonl", "5.3.jsonl.done"]
    return {"segment_bytes": journal.SEGMENT_BYTES, "lines": lines,
            "names": [{"name": n, "pid": journal.writer_of(n)[0], "segment": journal.writer_of(n)[1]} for n in names]}


class _Recorder:
    """The publisher's place: what the app records (the journal's line, see journal_cases)."""

    def __init__(self):
        self.events: list[tuple[str, bytes, str]] = []
        self.ticks: list = []

    def submit(self, routing_key: str, body: bytes, message_id: str) -> None:
        self.events.append((routing_key, body, message_id))

    def start(self) -> None:
        pass


def _fallback(environ, start_response):
    start_response("599 Fallback", [])
    return [b""]


def requests() -> dict:
    base = "http://127.0.0.1:8095/t"
    config, report = validate({"PRIVATE_KEY": KEY, "WEBAPI_PRIVATE_KEY": KEY, "TRACKING_CRYPT_KEY": KEY,
                               "TRACKING_BASE_URL": base})
    assert config is not None, report
    recorder = _Recorder()
    app = TrackingApp(config, registry.get("trkaction"), recorder, _fallback)
    click, opened = sign(_link(), KEY), sign(_link("open"), KEY)
    latin = "Mozilla/5.0 \u00e9t\u00e9 \"quoted\" \\"
    cases = [
        ("click", "GET", f"/t/c/{click}", {}),
        ("click without the prefix", "GET", f"/c/{click}", {}),
        ("click HEAD", "HEAD", f"/t/c/{click}", {}),
        ("click POST", "POST", f"/t/c/{click}", {}),
        ("click DELETE of a tampered token", "DELETE", f"/t/c/{_flip(click, 50)}", {}),
        ("click tampered", "GET", f"/t/c/{_flip(click, 50)}", {}),
        ("click tampered HEAD", "HEAD", f"/t/c/{_flip(click, 50)}", {}),
        ("click with an open token", "GET", f"/t/c/{opened}", {}),
        ("click with .gif", "GET", f"/t/c/{click}.gif", {}),
        ("click too short", "GET", "/t/c/" + "A" * 39, {}),
        ("click to javascript:", "GET", f"/t/c/{sign(_link(url='javascript:alert(1)'), KEY)}", {}),
        ("click to a relative URL", "GET", f"/t/c/{sign(_link(url='/relative'), KEY)}", {}),
        ("click to a URL with a space", "GET", f"/t/c/{sign(_link(url='https://a.example/x y'), KEY)}", {}),
        ("click to an empty URL", "GET", f"/t/c/{sign(_link(url=''), KEY)}", {}),
        ("click to HTTPS upper case", "GET", f"/t/c/{sign(_link(url='HTTPS://A.example/'), KEY)}", {}),
        ("click to a non-ASCII URL", "GET", f"/t/c/{sign(_link(url='https://shop.example/путь?q=ü#é'), KEY)}", {}),
        ("click to an IPv6 host", "GET", f"/t/c/{sign(_link(url='http://[2001:db8::1]:8080/x'), KEY)}", {}),
        ("click to https: without a host", "GET", f"/t/c/{sign(_link(url='https:///x'), KEY)}", {}),
        ("click just signed", "GET", f"/t/c/{sign(_link(issued=int(NOW) - 1), KEY)}", {}),
        ("click expired", "GET", f"/t/c/{sign(_link(issued=int(NOW) - TTL - 5), KEY)}", {}),
        ("click by curl", "GET", f"/t/c/{click}", {"User-Agent": "curl/8.5.0"}),
        ("click without a user agent", "GET", f"/t/c/{click}", {"User-Agent": None}),
        ("click by a latin-1 user agent", "GET", f"/t/c/{click}", {"User-Agent": latin}),
        ("click through nginx (X-Real-IP)", "GET", f"/t/c/{click}",
         {"REMOTE_ADDR": "127.0.0.1", "X-Real-IP": " 198.51.100.4 "}),
        ("click through nginx (X-Forwarded-For)", "GET", f"/t/c/{click}",
         {"REMOTE_ADDR": "127.0.0.1", "X-Forwarded-For": "10.0.0.1, 198.51.100.9"}),
        ("click: X-Real-IP from a remote peer is not believed", "GET", f"/t/c/{click}",
         {"X-Real-IP": "198.51.100.4"}),
        ("open", "GET", f"/t/o/{opened}.gif", {}),
        ("open without .gif", "GET", f"/t/o/{opened}", {}),
        ("open HEAD", "HEAD", f"/t/o/{opened}.gif", {}),
        ("open POST", "POST", f"/t/o/{opened}.gif", {}),
        ("open tampered", "GET", f"/t/o/{_flip(opened, 20)}.gif", {}),
        ("open with a click token", "GET", f"/t/o/{click}.gif", {}),
        ("open by Apple's prefetch (bare user agent)", "GET", f"/t/o/{opened}.gif", {"User-Agent": "Mozilla/5.0"}),
        ("open from Apple's network", "GET", f"/t/o/{opened}.gif",
         {"REMOTE_ADDR": "127.0.0.1", "X-Real-IP": "17.58.63.1"}),
        ("open by a scanner", "GET", f"/t/o/{opened}.gif", {"User-Agent": "Mozilla/5.0 (compatible; Mimecast)"}),
    ]
    out = []
    for i, (name, method, path, headers) in enumerate(cases):
        headers = {"User-Agent": BROWSER, **headers}
        remote = headers.pop("REMOTE_ADDR", "192.0.2.7")
        headers = {k: v for k, v in headers.items() if v is not None}
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "REMOTE_ADDR": remote}
        environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
        seen: dict = {}

        def start_response(status, response_headers, seen=seen):
            seen["status"], seen["headers"] = status, response_headers

        random.seed(1000 + i)
        recorder.events.clear()
        with mock.patch("time.time", return_value=NOW):
            body = b"".join(app(environ, start_response))
        (event,) = recorder.events or [None]
        out.append({"name": name, "method": method, "path": path, "remote": remote, "headers": headers,
                    "status": int(seen["status"][:3]), "response_headers": [list(h) for h in seen["headers"]],
                    "body": base64.b64encode(body).decode(),
                    "event": None if event is None else {"routing_key": event[0], "body": event[1].decode("ascii"),
                                                         "id": event[2]}})
    return {"key": KEY, "base_url": base, "now": NOW, "cases": out}


FILES = {"tokens.json": tokens, "bots.json": bots, "events.json": event_cases, "journal.json": journal_cases,
         "requests.json": requests}


def render(name: str) -> str:
    return json.dumps(FILES[name](), indent=1, ensure_ascii=True) + "\n"


def main() -> None:
    TESTDATA.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (TESTDATA / name).write_text(render(name))
        print(f"wrote {TESTDATA / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
