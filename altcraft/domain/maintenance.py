"""The platform's maintenance flag: the quiet point of a backup (issue 14).

One document in the control database says "maintenance" with a reason, an owner and a
lease. Whoever sets it renews the lease while it works and clears it when done, also on
failure; a holder that dies (kill -9) stops renewing, and the flag lapses by itself when
the lease runs out, so the platform is never left paused. Processes read it: the API
answers every write with a clear "maintenance" error while it is set (reads go on).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain.errors import Conflict, DomainError

COLLECTION = "platform_state"
FLAG_ID = "maintenance"
CACHE_SECONDS = 1.0


class UnderMaintenance(DomainError):
    """A write refused while the platform is at its quiet point."""

    status = 503


class Maintenance:
    def __init__(self, control: Database, clock=time.time):
        self.collection = control[COLLECTION]
        self.clock = clock

    def active(self) -> dict[str, Any] | None:
        """The flag, if it is set and its lease has not run out."""
        doc = self.collection.find_one({"_id": FLAG_ID})
        if doc is None or doc.get("until", 0) <= self.clock():
            return None
        return doc

    def begin(self, reason: str, owner: str, lease_seconds: float) -> str:
        """Sets the flag; returns the holder's token. Conflict if a live holder has it."""
        now = self.clock()
        token = secrets.token_hex(16)
        doc = {"reason": reason, "owner": owner, "token": token, "since": now, "until": now + lease_seconds}
        # take a lapsed flag over, or create it; a live one makes the upsert collide on _id
        try:
            self.collection.update_one({"_id": FLAG_ID, "until": {"$lte": now}}, {"$set": doc}, upsert=True)
        except DuplicateKeyError:
            holder = self.active() or {}
            raise Conflict(f"maintenance already set by {holder.get('owner', '?')}: "
                           f"{holder.get('reason', '?')}") from None
        return token

    def renew(self, token: str, lease_seconds: float) -> bool:
        result = self.collection.update_one({"_id": FLAG_ID, "token": token},
                                            {"$set": {"until": self.clock() + lease_seconds}})
        return result.matched_count == 1

    def end(self, token: str) -> None:
        self.collection.delete_one({"_id": FLAG_ID, "token": token})


_cache: dict[str, tuple[float, dict[str, Any] | None]] = {}


def refuse_writes(control: Database) -> None:
    """Raises UnderMaintenance while the flag is set (read at most once a second per
    database and process: a write waits for no extra round trip most of the time)."""
    now = time.monotonic()
    hit = _cache.get(control.name)
    if hit is None or now - hit[0] > CACHE_SECONDS:
        hit = (now, Maintenance(control).active())
        _cache[control.name] = hit
    flag = hit[1]
    if flag is not None:
        raise UnderMaintenance(f"maintenance: {flag.get('reason', 'the platform is at a quiet point')}; "
                               "writes are refused until it ends, retry later")
