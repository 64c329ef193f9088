"""The skeleton every HTTP process is built on.

Every HTTP process answers
  GET /<name>/health     200 "OK" while the process serves
  GET /<name>/readiness  200 {"status": "OK"}, or 503 {"status": "FAIL", "failed": [...]}
                         naming each dependency (store or broker) that did not answer
  GET /metrics           Prometheus metrics (all gunicorn workers together), with
                         altcraft_readiness{service} 1/0: the readiness above, for the alert rules
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

from flask import Flask, Response, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from altcraft.config import MainConfig
from altcraft.stores import checks

REQUESTS = Counter("altcraft_http_requests_total", "HTTP requests served",
                   ["service", "endpoint", "method", "status"])
LATENCY = Histogram("altcraft_http_request_seconds", "HTTP request latency",
                    ["service", "endpoint"])

Checker = Callable[[], list[str]]  # returns the names of the failed dependencies


def dependency_checker(config: MainConfig, requires: Iterable[str], ttl: float = 2.0,
                       timeout: float = 2.0) -> Checker:
    """Checks the dependencies for real, at most once per `ttl` seconds per worker.

    Load balancers probe often; the short cache keeps a probe from opening a connection to
    every store each time while still noticing an outage within seconds.
    """
    names = tuple(requires)
    lock = threading.Lock()
    cached: dict[str, object] = {"at": float("-inf"), "failed": []}

    def check() -> list[str]:
        with lock:
            if time.monotonic() - cached["at"] >= ttl:  # type: ignore[operator]
                results = checks.run(config, only=names, timeout=timeout)
                cached["failed"] = [r.name for r in results if not r.ok]
                cached["at"] = time.monotonic()
            return list(cached["failed"])  # type: ignore[arg-type]
    return check


def _metrics_registry() -> CollectorRegistry | None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return None  # single process: the default registry


class _Readiness:
    """altcraft_readiness, computed when scraped (the checker's short cache keeps it cheap):
    no file of the multiprocess mode is involved, every worker answers the same."""

    def __init__(self, name: str, readiness: Checker):
        self.name, self.readiness = name, readiness

    def collect(self):
        gauge = GaugeMetricFamily("altcraft_readiness", "1 when every dependency answers "
                                  "(GET /<service>/readiness is 200), else 0", labels=["service"])
        gauge.add_metric([self.name], 0.0 if self.readiness() else 1.0)
        yield gauge


def create_service_app(name: str, readiness: Checker) -> Flask:
    # no static route: a Flask app named after no module would serve ./static of the working directory
    app = Flask(f"altcraft.{name}", static_folder=None)
    app.config["SERVICE_NAME"] = name

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        REQUESTS.labels(name, endpoint, request.method, str(response.status_code)).inc()
        LATENCY.labels(name, endpoint).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    @app.get(f"/{name}/health")
    def health() -> Response:
        return Response("OK", mimetype="text/plain")

    @app.get(f"/{name}/readiness")
    def ready() -> tuple[Response, int]:
        failed = readiness()
        if failed:
            return jsonify(status="FAIL", failed=failed), 503
        return jsonify(status="OK"), 200

    ready_metric = CollectorRegistry()
    ready_metric.register(_Readiness(name, readiness))

    @app.get("/metrics")
    def metrics() -> Response:
        registry = _metrics_registry()
        body = generate_latest(registry) if registry else generate_latest()
        return Response(body + generate_latest(ready_metric), mimetype=CONTENT_TYPE_LATEST)

    return app
