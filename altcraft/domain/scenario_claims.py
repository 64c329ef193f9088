"""Claims of due scenario runs by unique inserts: which procworkflow worker steps a run now.

A worker claims a run by inserting documents whose _id names the run's position (its step
and when that step came due) and a lease slot. A unique _id lets one insert win, on MongoDB
and on the FerretDB stand-in alike, and one insert_many claims a whole batch in one round
trip. What it replaces, a conditional findAndModify a run, was on the stand-in a scan of the
whole runs collection a run (FerretDB on SQLite filters in its own process unless the filter
is {_id} alone) and not atomic there either.

Time is cut into slots of the lease's length. A claim takes two neighbouring slots, the one
it is made in and the next, so it lasts one to two leases, and two claims made at the same
time always share a slot: one of them loses. A worker that dies holds its runs until its
second slot ends; then they are claimed again under other keys. A run that moves on (a
stored step, a new due time) has other keys, so its old claims block nothing.

Claims live in one collection an hour (`workflow_claims_<hour>`), and a collection two hours
old is dropped: nothing is scanned and nothing is deleted document by document.
"""

from __future__ import annotations

import time
import zlib
from datetime import datetime, timezone
from typing import Any

from pymongo.database import Database

from altcraft.stores.documents import insert_new

PREFIX = "workflow_claims_"
BUCKET_SECONDS = 3600
DROP_EVERY_SECONDS = 60.0


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def position(run: dict[str, Any]) -> str:
    """Where a run stands: its step and when that step came due (a hold keeps the step and
    sets a new due time), as a claim key's prefix."""
    return f"{run['_id']}:{run['step']}:{round(_epoch(run['due_at']) * 1000)}"


class Leases:
    def __init__(self, control: Database):
        self.control = control
        self._dropped_at = float("-inf")

    def take(self, candidates: list[dict[str, Any]], owner: str, limit: int, lease_seconds: float,
             now: datetime) -> list[dict[str, Any]]:
        """Up to `limit` of `candidates` (due runs, earliest first) claimed for `owner`; each
        claimed run gets `claim` = {"until": when the claim ends, "owner"} (in memory only).
        A worker tries the runs of its own lane first (half of the run ids, by owner), so two
        workers that see the same due runs mostly try different ones."""
        slot = int(_epoch(now) // lease_seconds)
        until = datetime.fromtimestamp((slot + 2) * lease_seconds, timezone.utc)
        if now.tzinfo is None:
            until = until.replace(tzinfo=None)
        lane = zlib.crc32(owner.encode()) & 1
        ordered = sorted(candidates, key=lambda run: (zlib.crc32(run["_id"].encode()) & 1) != lane)
        won: list[dict[str, Any]] = []
        start = 0
        while len(won) < limit and start < len(ordered):
            chunk = ordered[start:start + limit - len(won)]
            start += len(chunk)
            won += self._insert(chunk, owner, slot, lease_seconds, now)
        for run in won:
            run["claim"] = {"until": until, "owner": owner}
        self._drop_old(now)
        return won

    def _insert(self, runs: list[dict[str, Any]], owner: str, slot: int, lease_seconds: float,
                now: datetime) -> list[dict[str, Any]]:
        """The runs of `runs` whose two claims this worker inserted; a run of which it won one
        only (another claim made at the same time has the other) gives that one back."""
        by_collection: dict[str, list[dict[str, Any]]] = {}
        for run in runs:
            for s in (slot, slot + 1):
                name = f"{PREFIX}{int(s * lease_seconds // BUCKET_SECONDS)}"
                by_collection.setdefault(name, []).append(
                    {"_id": f"{position(run)}:{s}", "run": run["_id"], "owner": owner, "at": now})
        lost: set[str] = set()
        inserted: dict[str, str] = {}  # claim _id -> its collection
        for name, docs in by_collection.items():
            failed = insert_new(self.control[name], docs)
            for index, doc in enumerate(docs):
                if index in failed:
                    lost.add(doc["run"])
                else:
                    inserted[doc["_id"]] = name
        for claim_id, name in inserted.items():
            if claim_id.split(":", 1)[0] in lost:  # a half-won claim would block the run's next slot
                self.control[name].delete_one({"_id": claim_id})  # {_id} alone: no scan
        return [run for run in runs if run["_id"] not in lost]

    def _drop_old(self, now: datetime) -> None:
        """Drops the claim collections of hours before the last (at most once a minute)."""
        if time.monotonic() - self._dropped_at < DROP_EVERY_SECONDS:
            return
        self._dropped_at = time.monotonic()
        current = int(_epoch(now) // BUCKET_SECONDS)
        for name in self.control.list_collection_names():
            if name.startswith(PREFIX) and name[len(PREFIX):].isdigit() and int(name[len(PREFIX):]) < current - 1:
                self.control.drop_collection(name)
