"""The platform's maintenance flag: the quiet point of a backup (issue 14).

One document in the control database says "maintenance" with a reason, an owner and a
lease. Whoever sets it renews the lease while it works and clears it when done, also on
failure; a holder that dies (kill -9) stops renewing, and the flag lapses by itself when
the lease runs out, so the platform is never left paused. Processes read it: the API
answers every write with a clear "maintenance" error while it is set (reads go on).

The quiet point is a roll call. Every process that changes data in the background (the
campaign worker, akmtad, procactions) is a `QuietMember`: it writes a small member document
beside the flag (its role, owner, the time it was last seen) every few seconds, and once it
has stopped what the flag asks it to stop it writes the flag's token there (`quiet`).
procactions does not stop; it answers a drain request (`drain`, a counter in the flag) once
it holds nothing unwritten. Whoever set the flag waits, bounded, until every member seen
lately has answered; a member not seen for STALE_SECONDS is taken for dead.
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
MEMBER_PREFIX = "member:"
HEARTBEAT_SECONDS = 2.0  # how often a member writes that it lives (at most)
STALE_SECONDS = 20.0  # a member not seen this long is taken for dead (clocks may differ a little)


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

    def begin(self, reason: str, owner: str, lease_seconds: float, owner_started: float | None = None) -> str:
        """Sets the flag; returns the holder's token. Conflict if a live holder has it.
        `owner` is "host:pid"; `owner_started` the process's start time, so that akd status
        can tell the holder's death from a pid reused by another process."""
        now = self.clock()
        token = secrets.token_hex(16)
        doc = {"reason": reason, "owner": owner, "token": token, "since": now, "until": now + lease_seconds,
               "owner_started": owner_started, "drain": 0}
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

    def request_drain(self, token: str) -> int:
        """Asks procactions to say when it holds nothing unwritten; returns the request's number."""
        doc = self.collection.find_one_and_update({"_id": FLAG_ID, "token": token}, {"$inc": {"drain": 1}},
                                                  return_document=True)
        if doc is None:
            raise Conflict("maintenance: the flag is no longer ours (its lease ran out)")
        return doc["drain"]

    def members(self, role: str | None = None) -> list[dict[str, Any]]:
        """The members seen within STALE_SECONDS (the living ones)."""
        query: dict[str, Any] = {"_id": {"$regex": f"^{MEMBER_PREFIX}"}, "seen": {"$gt": self.clock() - STALE_SECONDS}}
        if role:
            query["role"] = role
        return list(self.collection.find(query))

    def holder(self) -> dict[str, Any] | None:
        """The flag's document as stored, lapsed or not."""
        return self.collection.find_one({"_id": FLAG_ID})

    def clear(self, holder: dict[str, Any]) -> bool:
        """Removes this very flag (matched by token): for a holder that is gone."""
        return self.collection.delete_one({"_id": FLAG_ID, "token": holder.get("token")}).deleted_count == 1


def abandoned(holder: dict[str, Any], now: float, host: str,
              process_started: Any) -> str | None:
    """Why the flag's holder is gone, or None while it may live: its lease ran out, or its
    owner ("host:pid") is a process of `host` that no longer runs. `process_started(pid)`
    is the start time of a running pid, or None; a pid reused by another process started
    later than the flag's `owner_started`."""
    if holder.get("until", 0) <= now:
        return f"its lease ran out {now - holder.get('until', 0):.0f} s ago"
    owner_host, _, pid = str(holder.get("owner", "")).rpartition(":")
    if owner_host != host or not pid.isdigit():
        return None  # another host's process: only its lease can tell
    started = process_started(int(pid))
    if started is None:
        return f"its process {pid} is gone"
    if holder.get("owner_started") is not None and abs(started - holder["owner_started"]) > 1.0:
        return f"its process {pid} is gone (the pid belongs to another process now)"
    return None


class QuietMember:
    """One background process's side of the roll call (see the module's text).

    `flag()` reads the flag; `report(quiet=...)` says whether the process is stopped for it
    now, writing at most every HEARTBEAT_SECONDS unless the answer changed."""

    def __init__(self, control: Database, role: str, owner: str, clock=time.time):
        self.maintenance = Maintenance(control, clock)
        self.collection = self.maintenance.collection
        self.role, self.owner, self.clock = role, owner, clock
        self._id = f"{MEMBER_PREFIX}{role}:{owner}"
        self._last: tuple[Any, ...] | None = None
        self._written = 0.0

    def flag(self) -> dict[str, Any] | None:
        return self.maintenance.active()

    def report(self, quiet: str | None = None, drained: int | None = None) -> None:
        state = (quiet, drained)
        now = self.clock()
        if state == self._last and now - self._written < HEARTBEAT_SECONDS:
            return
        self.collection.update_one({"_id": self._id}, {"$set": {
            "role": self.role, "owner": self.owner, "seen": now, "quiet": quiet, "drained": drained}}, upsert=True)
        self._last, self._written = state, now

    def leave(self) -> None:
        self.collection.delete_one({"_id": self._id})


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
