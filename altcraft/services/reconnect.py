"""The outer loop of every consuming worker: run, and when a store or the broker goes away,
wait and run again.

A worker acknowledges only what it has finished, so an attempt that raises loses nothing:
the broker delivers the unacknowledged messages again and leases run out. The wait doubles
from 1 s up to 30 s, and starts over once an attempt has lasted a minute (a broker that comes
back after a short outage is not waited for as long as one that keeps failing)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol

FIRST_WAIT, LONGEST_WAIT, HEALTHY_RUN = 1.0, 30.0, 60.0


class Worker(Protocol):
    def run(self, stop: threading.Event) -> None: ...
    def close(self) -> None: ...


def run_until_stopped(attempt: Callable[[threading.Event], None], stop: threading.Event, what: str,
                      log: logging.Logger) -> None:
    wait = FIRST_WAIT
    while not stop.is_set():
        started = time.monotonic()
        try:
            attempt(stop)
        except Exception as exc:  # noqa: BLE001 - a store or the broker away: retried below
            if time.monotonic() - started > HEALTHY_RUN:
                wait = FIRST_WAIT
            log.warning("%s interrupted (%s: %s); reconnecting in %.0f s", what, type(exc).__name__,
                        str(exc)[:300], wait)
            stop.wait(wait)
            wait = min(wait * 2, LONGEST_WAIT)


def fresh(factory: Callable[[], Worker]) -> Callable[[threading.Event], None]:
    """An attempt with a new worker (new connections) each time, closed afterwards."""
    def attempt(stop: threading.Event) -> None:
        worker = factory()
        try:
            worker.run(stop)
        finally:
            try:
                worker.close()
            except Exception:  # noqa: BLE001 - closing what is already broken
                pass
    return attempt
