"""When the tracking relay gives way to the answers.

A click burst (a million recipients opening one message) saturates the cores of the
tracking host. Every event the relay publishes then costs the broker's ingest too (on an
all-in-one host RabbitMQ runs beside the front), and both take cores from the answers: in
bench/track.py the front's p99 went from 6 ms to 40-75 ms while the relay kept publishing.
The events are already safe in the journal before each answer goes out, so publishing can
wait: while a burst is on, the relay publishes at most FLOOR events a second (reports lag
the burst, they do not stop) and catches up when it ends.

"A burst is on" needs both signs, sampled every SAMPLE seconds:
- the CPU is contended: Linux's pressure stall information (/proc/pressure/cpu, `some`:
  the share of time at least one runnable task waited for a CPU) was at least BUSY;
- the journal is growing fast: the writers appended at least GROWING bytes a second.
  Catching up after the burst loads the cores too, but the journal no longer grows, so
  the relay then goes at full speed.

A load that never ends must not starve the reports: after MOST_YIELD seconds of giving
way the relay publishes at full speed for as long again. Without PSI (an older kernel,
some containers) it never gives way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("altcraft.trk.relay")

PSI = Path("/proc/pressure/cpu")
SAMPLE = 0.2
BUSY = 0.25  # of the last sample, a task waited for a CPU this share of the time
GROWING = 256 * 1024  # journal bytes appended a second (~600 clicks)
FLOOR = 500  # events a second while giving way (each costs the broker ~70 us a queue it lands in)
MOST_YIELD = 30.0  # seconds of giving way in a row, then as long at full speed


def stalled_microseconds(text: str) -> int | None:
    """`total=` of the `some` line of /proc/pressure/cpu."""
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split()[1:]:
                if field.startswith("total="):
                    return int(field[6:])
    return None


class CpuPressure:
    """The share of time since the last call with a task waiting for a CPU (0.0 without PSI)."""

    def __init__(self, path: Path = PSI, clock: Callable[[], float] = time.monotonic):
        self.path, self.clock = path, clock
        self._last: tuple[float, int] | None = None

    def share(self) -> float:
        try:
            stalled = stalled_microseconds(self.path.read_text())
        except OSError:
            stalled = None
        if stalled is None:
            return 0.0
        now, last = self.clock(), self._last
        self._last = (now, stalled)
        if last is None or now <= last[0]:
            return 0.0
        return (stalled - last[1]) / 1e6 / (now - last[0])


class Pacer:
    """How many events the relay may send now (`room`, then `took` what it sent); `appended()`
    counts the bytes the writers have appended so far (it only grows)."""

    def __init__(self, pressure: Callable[[], float], clock: Callable[[], float] = time.monotonic,
                 floor: int = FLOOR):
        self.pressure, self.clock, self.floor = pressure, clock, floor
        self.yielding = False
        self._sampled_at: float | None = None
        self._size = 0
        self._since = 0.0  # when the current yield (or the full-speed spell after a long one) began
        self._rested_until = 0.0  # no yielding before this (after MOST_YIELD of it)
        self._tokens = 0.0
        self._filled_at = 0.0

    def room(self, wanted: int, appended: Callable[[], int]) -> int:
        now = self.clock()
        if self._sampled_at is None:
            self._sampled_at, self._size = now, appended()
        elif now - self._sampled_at >= SAMPLE:
            size = appended()
            grown = (size - self._size) / (now - self._sampled_at)
            self._sampled_at, self._size = now, size
            self._decide(now, self.pressure() >= BUSY and grown >= GROWING)
        if not self.yielding:
            return wanted
        self._tokens = min(self.floor * SAMPLE, self._tokens + (now - self._filled_at) * self.floor)
        self._filled_at = now
        return min(wanted, int(self._tokens))

    def took(self, sent: int) -> None:
        if self.yielding:
            self._tokens -= sent

    def _decide(self, now: float, burst: bool) -> None:
        if self.yielding and (not burst or now - self._since >= MOST_YIELD):
            self.yielding = False
            if burst:  # a load that does not end: as long at full speed before yielding again
                self._rested_until = now + MOST_YIELD
            log.info("publishing at full speed again after %.1f s at %d events/s%s", now - self._since, self.floor,
                     " (the load goes on)" if burst else "")
        elif not self.yielding and burst and now >= self._rested_until:
            self.yielding, self._since = True, now
            self._tokens, self._filled_at = 0.0, now
            log.info("a burst on busy cores: publishing at most %d events/s until it ends", self.floor)
