"""Wait for the machine to go quiet before a measured phase: what an earlier phase or run
left running (ClickHouse merging the last run's rows, the broker paging a deleted vhost's
queues) otherwise lands in whichever figure comes next, ours or the reference's."""

from __future__ import annotations

import time
from dataclasses import dataclass

WINDOW = 0.5  # seconds per look at /proc/stat
QUIET = 0.10  # busy share of all cores below which a window counts as quiet
LOOKS = 2  # quiet windows in a row
MOST = 120.0  # seconds; then the phase runs anyway, and the output says how busy it was


@dataclass
class Settled:
    waited: float  # seconds
    busy: float  # the last window's busy share of all cores

    def __str__(self) -> str:
        return f"quiet after {self.waited:.0f} s ({self.busy:.0%} busy)" if self.busy < QUIET else \
            f"NOT quiet after {self.waited:.0f} s ({self.busy:.0%} busy)"


def _cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def busy_share(window: float = WINDOW) -> float:
    busy, total = _cpu()
    time.sleep(window)
    busy_after, total_after = _cpu()
    return (busy_after - busy) / max(1, total_after - total)


def settle(most: float = MOST) -> Settled:
    began = time.monotonic()
    quiet = 0
    while True:
        busy = busy_share()
        quiet = quiet + 1 if busy < QUIET else 0
        waited = time.monotonic() - began
        if quiet >= LOOKS or waited >= most:
            return Settled(waited, busy)
