"""Pushes an on-demand worker's metrics to the Prometheus Pushgateway, as Altcraft's
`campaign` does: while a run is on (every PROMETHEUS_METRICS.PUSH_INTERVAL_SECONDS) and once
at its end, under the grouping key job=<job>, instance=<host>.

A push that fails never fails the run: the first failure is logged as a warning naming the
gateway and the job, the next ones are not (a gateway away would otherwise fill the log
every interval) until a push succeeds again, which is logged once too.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, push_to_gateway

from altcraft.config import PrometheusMetrics

log = logging.getLogger("altcraft.metrics.push")


class Pusher:
    def __init__(self, settings: PrometheusMetrics, process: str, job: str, registry: CollectorRegistry):
        self.enabled = settings.exports(process)
        self.url = settings.PUSHGATEWAY_URL
        self.interval = settings.PUSH_INTERVAL_SECONDS
        self.timeout = settings.PUSH_TIMEOUT_SECONDS
        self.job = job
        self.grouping_key = {"instance": settings.INSTANCE or socket.gethostname()}
        self.registry = registry
        self.failing = False
        self._lock = threading.Lock()  # the interval thread and the end-of-run push

    def push(self) -> bool:
        """One push of every metric of the registry; False when it did not reach the gateway."""
        if not self.enabled:
            return False
        with self._lock:
            try:
                push_to_gateway(self.url, job=self.job, registry=self.registry,
                                grouping_key=self.grouping_key, timeout=self.timeout)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the run goes on
                if not self.failing:
                    log.warning("metrics of job %s not pushed to the Pushgateway %s (%s: %s); the run goes "
                                "on, and this is logged again only after a push succeeded",
                                self.job, self.url, type(exc).__name__, exc)
                self.failing = True
                return False
            if self.failing:
                log.info("metrics of job %s pushed to the Pushgateway %s again", self.job, self.url)
            self.failing = False
            return True

    @contextmanager
    def while_running(self) -> Iterator[None]:
        """Pushes every interval on a thread while the body runs, and once when it ends
        (also when it raises: the failure counter is what the gateway must see)."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()

        def every_interval() -> None:
            while not stop.wait(self.interval):
                self.push()

        thread = threading.Thread(target=every_interval, name=f"push-{self.job}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=self.timeout + 1)
            self.push()
