"""ISP locks: an answer matching a lock rule stops all sending to its ISP until the lock ends."""

from __future__ import annotations

import logging

from altcraft.mta.ports import Clock

log = logging.getLogger("altcraft.akmtad")


class IspLocks:
    def __init__(self, clock: Clock):
        self.clock = clock
        self.until: dict[str, float] = {}  # ISP -> epoch seconds

    def lock(self, isp: str, seconds: float) -> float:
        """Locks the ISP for `seconds` from now (a longer lock already on it stands); returns
        when it ends."""
        until = max(self.until.get(isp, 0.0), self.clock.time() + seconds)
        self.until[isp] = until
        return until

    def is_locked(self, isp: str) -> bool:
        until = self.until.get(isp)
        if until is None:
            return False
        if until > self.clock.time():
            return True
        del self.until[isp]
        log.info("lock of %s ended", isp)
        return False
