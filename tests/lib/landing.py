"""A shop's landing pages on loopback, for the browser tests that follow tracked links: it
records which paths the browser reached."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.lib.ports import free_port

# A headless Chromium says "HeadlessChrome", which the bot filter rightly flags (scanners use
# headless browsers); a test that reads mail as a person would sends a desktop UA.
PERSON = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"


class Landing:
    def __init__(self):
        self.seen: list[str] = []
        seen = self.seen

        class Page(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/p/"):
                    seen.append(self.path)
                body = b"<!doctype html><title>landing</title><h1>Sale</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Landing:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
