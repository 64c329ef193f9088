"""Polling for a condition that becomes true in another process, and the start and the end of
the server processes the test helpers run (PostgreSQL, Redis, Prometheus, ZooKeeper...)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", every: float = 0.2):
    """Polls until predicate() is truthy and returns its value; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def wait_started(process: subprocess.Popen, ready: Callable[[], bool], what: str,
                 log: Path | Callable[[], str] | None = None, timeout: float = 30.0, every: float = 0.2) -> None:
    """Polls a process just started until ready() is true. A process that exits first fails
    at once (not at the timeout), naming `what`, its exit code and the end of its `log` (a
    file, or a function returning the text: what a pipe holds)."""
    wait_for(lambda: process.poll() is not None or ready(), timeout=timeout, what=what, every=every)
    if process.poll() is not None:
        if callable(log):
            text = log()
        else:
            text = log.read_text(errors="replace") if log is not None and log.exists() else ""
        raise RuntimeError(f"{what}: exited with {process.returncode}: {text[-2000:]}")


def stop_processes(*processes: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Sends `sig` to each process still running (all first, so that they shut down side by
    side), then waits for each; one still running after `timeout` seconds is killed."""
    running = [p for p in processes if p is not None and p.poll() is None]
    for process in running:
        process.send_signal(sig)
    for process in running:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
