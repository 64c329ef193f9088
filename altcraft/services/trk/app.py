"""trkaction and trkimage: the tracking endpoints that every sent message points at.

    GET|HEAD /c/<token>        302 to the URL signed into the token (a click)
    GET|HEAD /o/<token>.gif    a 1x1 GIF that is never cached (an open)
    GET|POST /u/<token>        unsubscribe: confirmation page; POST confirms (CSRF), or
                               RFC 8058 one-click with body List-Unsubscribe=One-Click
    GET|POST /m/<token>        subscription manager (CSRF-protected form)
    GET|HEAD /w/<token>        web version: the message's HTML as sent (pages.py), records nothing
    GET /<name>/health, /<name>/readiness, /metrics   as every HTTP process

Clicks and opens are the hot path: a plain WSGI callable, no Flask, no lookups. The token is
verified (HMAC) before anything is recorded, the event is appended to the worker's journal
file (journal.py: one write; the relay process, relay.py, publishes it) and the answer
leaves at once; were the journal not writable (a full disk), the event goes to the
in-process publisher (publisher.py: its buffer, then its spool). A tampered, truncated or
expired token, or a token of another kind, is a 404 that records nothing. The redirect goes
only to the URL inside the signed token, and only to http(s). /w shares that refusal (405,
404) and is then rendered by the pages.
Everything else is served by the Flask app of the HTTP skeleton with the pages blueprint.

Client address: REMOTE_ADDR; when the peer is loopback (nginx-trk on the same host), the
X-Real-IP header (or the last X-Forwarded-For entry) that nginx sets.
"""

from __future__ import annotations

import gc
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

from altcraft.config import MainConfig
from altcraft.domain import botfilter, events
from altcraft.domain.tracking import InvalidToken, verify
from altcraft.http.rsgi import WSGIBridge, client_host
from altcraft.http.service import REQUESTS, create_service_app, dependency_checker
from altcraft.registry import RABBITMQ, Process
from altcraft.schema.rabbitmq import EVENTS_EXCHANGE
from altcraft.services.trk.journal import Journal
from altcraft.services.trk.pages import Pages, blueprint, client_ip
from altcraft.services.trk.publisher import EVENTS, EventPublisher
from altcraft.services.trk.relay import RelayProcess, RelaySettings
from altcraft.stores import broker

# the smallest transparent GIF (42 bytes)
GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
       b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x01D\x00;")
_NO_STORE = ("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0, private")
_PIXEL_HEADERS = [("Content-Type", "image/gif"), ("Content-Length", str(len(GIF))), _NO_STORE,
                  ("Pragma", "no-cache"), ("Expires", "0")]
_NOT_FOUND_BODY = b"not found\n"
_NOT_FOUND = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(_NOT_FOUND_BODY))),
              _NO_STORE]
_NOT_ALLOWED = [("Allow", "GET, HEAD"), ("Content-Length", "0"), _NO_STORE]
_TOKEN = re.compile(r"[A-Za-z0-9_-]{40,8192}")
# characters kept as they are when a signed URL is put into the Location header; anything
# else (non-ASCII, spaces) is percent-encoded, so the header is always plain ASCII
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_LOCATIONS: dict[str, str | None] = {}  # signed URL -> Location value; the same links repeat
_LOCATIONS_MAX = 20_000


def safe_location(url: str) -> str | None:
    """The Location value for a signed URL, or None if it must not be redirected to."""
    try:
        return _LOCATIONS[url]
    except KeyError:
        pass
    location: str | None = None
    if url and not _CONTROL.search(url):  # control characters or spaces: never into a header
        parts = urlsplit(url)
        # only http(s) landing pages: not javascript:, data:, or a relative URL
        if parts.scheme.lower() in ("http", "https") and parts.netloc:
            location = url if url.isascii() else quote(url, safe=_URL_SAFE)
    if len(_LOCATIONS) >= _LOCATIONS_MAX:
        _LOCATIONS.clear()
    _LOCATIONS[url] = location
    return location


class TrackingApp:
    """The WSGI application of a tracking process: the lean paths, then Flask for the rest."""

    def __init__(self, config: MainConfig, process: Process, publisher: EventPublisher, fallback,
                 journal: Journal | None = None):
        self.service = process.name
        self.key = config.TRACKING_CRYPT_KEY
        self.ttl = config.TRACKING_LINK_TTL_DAYS * 86400
        self.prefix = urlsplit(config.TRACKING_BASE_URL).path.rstrip("/")
        self.publisher = publisher  # the pages' confirmed events; clicks when there is no journal
        self.journal = journal
        self.fallback = fallback
        # request counts are kept here and added to the Prometheus counter by the publisher
        # thread every ~0.2 s: a multiprocess counter's inc costs a few microseconds each
        self._counts: dict[tuple[str, str, str], int] = {}
        self._counts_lock = threading.Lock()
        publisher.ticks.append(self._flush_counts)
        self._bridge = WSGIBridge(self)  # under granian: what is not /c or /o (pages, Flask)

    def _count(self, endpoint: str, method: str, status: str) -> None:
        key = (endpoint, method, status)
        with self._counts_lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        self.publisher.start()

    def _flush_counts(self) -> None:
        with self._counts_lock:
            counts, self._counts = self._counts, {}
        for (endpoint, method, status), n in counts.items():
            REQUESTS.labels(self.service, endpoint, method, status).inc(n)
        accepted = self.journal.take_accepted() if self.journal is not None else 0
        if accepted:
            EVENTS.labels("accepted").inc(accepted)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.prefix and path.startswith(self.prefix + "/"):
            path = path[len(self.prefix):]
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.prefix
            environ["PATH_INFO"] = path
        head = path[:3]
        if head == "/c/":
            return self._click(environ, start_response, path[3:])
        if head == "/o/":
            token = path[3:]
            return self._open(environ, start_response, token[:-4] if token.endswith(".gif") else token)
        if head == "/w/":
            return self._webversion(environ, start_response, path[3:])
        return self.fallback(environ, start_response)

    # -- under granian (RSGI): /c and /o answered on the worker's loop, the rest on threads ----
    def __rsgi_init__(self, loop) -> None:
        # the cyclic garbage collector: what the worker has at its start (modules, the app)
        # is frozen out of every collection, and young collections run every 100,000
        # allocations instead of 700 (a collection stalls every request of the worker; with
        # the events in the in-process buffer it walked tens of thousands of them)
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        self.publisher.start()

    def __rsgi_del__(self, loop) -> None:
        """The worker stops: its journal to the disk, the publisher flushed (confirmed, or
        spooled) before it exits."""
        self._bridge.close()
        if self.journal is not None:
            self.journal.close()
        self.publisher.close()

    async def __rsgi__(self, scope, proto) -> None:
        path = scope.path
        if self.prefix and path.startswith(self.prefix + "/"):
            path = path[len(self.prefix):]
        if scope.proto != "http" or path[:3] not in ("/c/", "/o/"):
            return await self._bridge(scope, proto)
        # the same WSGI code as under gunicorn, with only what it reads: it never blocks
        # (the event goes to the publisher's buffer), so it runs right here
        headers = scope.headers
        environ = {"REQUEST_METHOD": scope.method, "PATH_INFO": scope.path,
                   "REMOTE_ADDR": client_host(scope.client),
                   "HTTP_USER_AGENT": headers.get("user-agent", "")}
        real_ip, forwarded = headers.get("x-real-ip"), headers.get("x-forwarded-for")
        if real_ip is not None:
            environ["HTTP_X_REAL_IP"] = real_ip
        if forwarded is not None:
            environ["HTTP_X_FORWARDED_FOR"] = forwarded
        answer = []
        body = b"".join(self(environ, lambda status, response_headers: answer.extend((status, response_headers))))
        proto.response_bytes(int(answer[0][:3]), answer[1], body)

    def _verified(self, token: str, kind: str):
        if not _TOKEN.fullmatch(token):
            return None
        try:
            link = verify(token, self.key, self.ttl)
        except InvalidToken:
            return None
        return link if link.kind == kind else None

    def _record(self, environ, link, kind: str, method: str) -> None:
        now = time.time()
        ip = client_ip(environ)
        user_agent = environ.get("HTTP_USER_AGENT", "")
        reason = botfilter.classify(kind, method, user_agent, ip, link.issued, now)
        event_id, routing_key, body = events.action(
            link, kind, ip=ip, user_agent=user_agent, is_bot=bool(reason), bot_reason=reason, now=now)
        if self.journal is None or not self.journal.append(routing_key, body, event_id):
            self.publisher.submit(routing_key, body, event_id)

    def _refused(self, start_response, route: str, method: str, link) -> list[bytes] | None:
        """The answer shared by /c, /o and /w when the method or the token is not acceptable
        (405, or 404 for a link that did not verify); None when the request may proceed."""
        if method not in ("GET", "HEAD"):
            self._count(route, method, "405")
            start_response("405 Method Not Allowed", _NOT_ALLOWED)
            return [b""]
        if link is None:
            self._count(route, method, "404")
            start_response("404 Not Found", _NOT_FOUND)
            return [_NOT_FOUND_BODY if method == "GET" else b""]
        return None

    def _click(self, environ, start_response, token: str):
        method = environ.get("REQUEST_METHOD", "GET")
        link = self._verified(token, "click") if method in ("GET", "HEAD") else None
        location = safe_location(link.url) if link is not None else None
        refused = self._refused(start_response, "/c/<token>", method, link if location else None)
        if refused is not None:
            return refused
        self._record(environ, link, "click", method)
        self._count("/c/<token>", method, "302")
        start_response("302 Found", [("Location", location), ("Content-Length", "0"),
                                     ("Cache-Control", "no-store, private"), ("Referrer-Policy", "no-referrer")])
        return [b""]

    def _open(self, environ, start_response, token: str):
        method = environ.get("REQUEST_METHOD", "GET")
        link = self._verified(token, "open") if method in ("GET", "HEAD") else None
        refused = self._refused(start_response, "/o/<token>", method, link)
        if refused is not None:
            return refused
        self._record(environ, link, "open", method)
        self._count("/o/<token>", method, "200")
        start_response("200 OK", _PIXEL_HEADERS)
        return [GIF if method == "GET" else b""]

    def _webversion(self, environ, start_response, token: str):
        method = environ.get("REQUEST_METHOD", "GET")
        link = self._verified(token, "webversion") if method in ("GET", "HEAD") else None
        refused = self._refused(start_response, "/w/<token>", method, link)
        if refused is not None:
            return refused
        return self.fallback(environ, start_response)  # the page: pages.py, counted by Flask


def spool_dir(config: MainConfig, process: Process) -> Path:
    return config.run_dir / "trk" / process.name


def flush_timeout(config: MainConfig) -> float:
    return max(1.0, min(5.0, config.AKD.STOP_TIMEOUT - 1))


def make_publisher(config: MainConfig, process: Process) -> EventPublisher:
    # its spool files are the relay's to publish (replay=False): one reader per directory
    return EventPublisher(lambda: broker.parameters(config, timeout=5.0, app=f"altcraft-{process.name}"),
                          EVENTS_EXCHANGE, spool_dir(config, process),
                          flush_timeout=flush_timeout(config), replay=False)


def start_relay(config: MainConfig, process: Process) -> RelayProcess:
    relay = RelayProcess(RelaySettings(
        process.name, broker.parameters(config, timeout=5.0, app=f"altcraft-{process.name}-relay"),
        EVENTS_EXCHANGE, spool_dir(config, process), flush_timeout(config), config.DEFAULT_LOG_LEVEL))
    relay.start()
    return relay


def create_app(config: MainConfig, process: Process) -> TrackingApp:
    """The entry point of trkaction and trkimage (akd runs it under granian, RSGI:
    registry.Process.server; it is a WSGI app too, as the tests and gunicorn use it).

    Readiness checks only the broker: clicks and opens need nothing else. The pages that
    read profiles (subscription manager) answer 503 while the account database is away.
    """
    publisher = make_publisher(config, process)
    start_relay(config, process)  # in the master, before the workers fork: one per process
    # the server forks its workers from this (preloaded) process: each worker starts its own
    # publisher thread at once (the metrics tick; the pages' confirmed events)
    os.register_at_fork(after_in_child=publisher.start)
    flask_app = create_service_app(process.name, dependency_checker(config, (RABBITMQ,)))
    flask_app.register_blueprint(blueprint(Pages(config, publisher)))
    return TrackingApp(config, process, publisher, flask_app, Journal(spool_dir(config, process)))
