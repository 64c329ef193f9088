"""The workers' outer loop: a failing attempt is retried after a doubling wait, a stopped
loop ends, and a fresh worker is closed after every attempt."""

from __future__ import annotations

import logging
import threading

from altcraft.services import reconnect


class Stop(threading.Event):
    """Records the waits instead of sleeping them."""

    def __init__(self):
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        return self.is_set()


def test_failures_wait_longer_each_time_up_to_the_cap_and_stop_ends_the_loop():
    stop, calls = Stop(), []

    def attempt(event):
        calls.append(event)
        if len(calls) == 8:
            stop.set()
            return
        raise ConnectionError("broker away")

    reconnect.run_until_stopped(attempt, stop, "test", logging.getLogger("t"))
    assert stop.waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert len(calls) == 8 and all(c is stop for c in calls)


def test_a_fresh_worker_per_attempt_is_closed_even_when_it_fails():
    made = []

    class Worker:
        def __init__(self):
            self.closed = False
            made.append(self)

        def run(self, stop):
            raise RuntimeError("store away")

        def close(self):
            self.closed = True
            raise OSError("already broken")  # closing a broken connection may fail too

    stop = Stop()
    attempt = reconnect.fresh(Worker)
    for _ in range(2):
        try:
            attempt(stop)
        except RuntimeError:
            pass
    assert len(made) == 2 and all(w.closed for w in made)
