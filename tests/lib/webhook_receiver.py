"""A webhook receiver on loopback, as a shop's system would run one: it verifies the
signature with the `standardwebhooks` package (an implementation not written here) and
de-duplicates by webhook-id, so each message is acknowledged (processed) once however often
it arrives.

Scriptable per path: `answers[path]` lists the HTTP statuses given to one webhook-id in turn
(the last one repeating), e.g. [500, 200] for a receiver that fails once; `delay` seconds
before each answer make it a slow receiver.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    path: str
    msg_id: str
    headers: dict[str, str]
    body: bytes
    status: int
    verified: bool


@dataclass
class Receiver:
    answers: dict[str, list[int]] = field(default_factory=dict)
    secrets: dict[str, list[str]] = field(default_factory=dict)  # path -> secrets that must verify
    delay: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)  # webhook-ids acknowledged, in order
    seen: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.handle(self.path, headers, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if self.delay:
            time.sleep(self.delay)
        msg_id = headers.get("webhook-id", "")
        verified = True
        for secret in self.secrets.get(path, []):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                verified = False
        with self.lock:
            nth = self.seen[(path, msg_id)]
            self.seen[(path, msg_id)] += 1
            script = self.answers.get(path, [200])
            status = script[min(nth, len(script) - 1)] if verified else 401
            if 200 <= status < 300 and (path, msg_id) not in self._acked:
                self._acked.add((path, msg_id))
                self.processed.append(msg_id)
            self.deliveries.append(Delivery(path, msg_id, headers, body, status, verified))
        return status

    def __post_init__(self) -> None:
        self._acked: set[tuple[str, str]] = set()

    def at(self, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path == path]

    def events(self, path: str) -> list[dict]:
        return [json.loads(d.body) for d in self.at(path) if 200 <= d.status < 300]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def by_id(deliveries: list[Delivery]) -> dict[str, list[Delivery]]:
    grouped: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        grouped[delivery.msg_id].append(delivery)
    return grouped
