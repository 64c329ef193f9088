"""A WSGI application served over granian's RSGI interface.

An HTTP process served by granian (registry: Process.server) speaks RSGI. A process whose
hot path is written for RSGI (it has `__rsgi__`, like the tracking app) answers those
requests on the worker's event loop; everything else, and every plain Flask app, goes
through `WSGIBridge`: the request becomes a WSGI environ and the app runs on a small thread
pool, as it would under gunicorn's gthread worker, so a view that blocks (a store, a
broker confirm) never blocks the loop.
"""

from __future__ import annotations

import asyncio
import io
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

THREADS = 4  # per worker, as gunicorn's gthread `threads`


def client_host(client: str) -> str:
    """The address part of RSGI's `client` ("ip:port", "[ipv6]:port")."""
    return client.rsplit(":", 1)[0].strip("[]") if client else ""


def environ_of(scope: Any, body: bytes) -> dict:
    """The WSGI environ (PEP 3333) of an RSGI HTTP scope and its request body."""
    server_host, _, server_port = (scope.server or "").rpartition(":")
    environ = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": scope.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server_host.strip("[]") or "localhost",
        "SERVER_PORT": server_port or "80",
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": client_host(scope.client),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in scope.headers.items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def call_wsgi(app: Any, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Runs a WSGI app to the end: (status code, headers, body)."""
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list, exc_info=None):
        if exc_info and answer:
            raise exc_info[1].with_traceback(exc_info[2])
        answer["status"], answer["headers"] = status, headers
        return lambda data: answer.setdefault("written", []).append(data)

    result = app(environ, start_response)
    try:
        body = b"".join(answer.pop("written", [])) + b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return int(answer["status"][:3]), [(str(k), str(v)) for k, v in answer["headers"]], body


class WSGIBridge:
    """Serves a WSGI app over RSGI; the app runs on THREADS threads per worker."""

    def __init__(self, app: Any, threads: int = THREADS):
        self.app = app
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:  # made in the worker (after the fork)
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="wsgi")
        return self._pool

    async def __call__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return  # no websockets here: granian closes the connection
        body = await proto()
        environ = environ_of(scope, body)
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(self.pool(), call_wsgi, self.app, environ)
        proto.response_bytes(status, headers, content)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
