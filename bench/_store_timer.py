"""Time spent in the document store, by (command, collection): a pymongo command listener the
benches register before any client exists (bench/automation_store.py, bench/workflow_start.py)."""

from __future__ import annotations

import collections

from pymongo import monitoring


class StoreTimer(monitoring.CommandListener):
    def __init__(self):
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()
        self._started: dict[int, tuple[str, str]] = {}

    def started(self, event):
        name = event.command_name
        target = event.command.get(name)
        self._started[event.request_id] = (name, target if isinstance(target, str) else "")

    def succeeded(self, event):
        key = self._started.pop(event.request_id, (event.command_name, ""))
        self.seconds[key] += event.duration_micros / 1e6
        self.calls[key] += 1

    failed = succeeded

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def register() -> StoreTimer:
    timer = StoreTimer()
    monitoring.register(timer)
    return timer
