"""proctask's scheduler: named jobs, each due time run once across any number of instances.

A job is due every `every` (due times are multiples of it since the epoch, so every instance
computes the same ones without talking to the others). Each tick, for each job, the latest
due time not in the future is claimed by inserting one run record whose `_id` is
"<job>@<due time>": the store's unique `_id` is the guard, so only one instance's insert
succeeds, and a due time already done is never run again. The winner holds a lease
(`lease_until`) while it runs; a run whose lease ran out while still `running` (its instance
crashed) is taken over by the next tick of any instance and run again, so jobs must be
idempotent (a retention delete is; the backup hook checks the backup runner's own flag).

Due times missed while no instance ran collapse into the latest one: a job runs at most once
per tick, never in a burst of catch-up runs.

Atomicity: the insert is atomic on MongoDB and on FerretDB (a unique primary key). The
takeover of an expired lease is a conditional update: atomic on MongoDB (one document), but
the FerretDB stand-in may let two instances win it at once; a crashed run can then be
retried twice, which the idempotent jobs make harmless.

The clock is injected (a callable returning an aware UTC datetime).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

log = logging.getLogger("altcraft.proctask")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[datetime], Any]  # called with the due time; returns a summary for the record
    enabled: Callable[[], bool] = lambda: True
    lease: timedelta = timedelta(minutes=5)  # longer than the job ever runs: no renewal


def latest_due(every: timedelta, at: datetime) -> datetime:
    """The latest multiple of `every` since the epoch not after `at`."""
    steps = (at - EPOCH) // every
    return EPOCH + steps * every


def run_id(job: str, due: datetime) -> str:
    return f"{job}@{due.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}"


class RunBook:
    """The run records (control DB collection `task_runs`), one per (job, due time)."""

    def __init__(self, collection: Any, clock: Clock):
        self.collection = collection
        self.clock = clock

    def claim(self, job: str, due: datetime, owner: str,
              lease: timedelta = timedelta(minutes=5)) -> dict[str, Any] | None:
        """The run of (job, due) leased to owner, or None when another has it or it is done."""
        stamp = self.clock()
        doc = {"_id": run_id(job, due), "job": job, "due": due, "state": "running", "owner": owner,
               "lease_until": stamp + lease, "attempts": 1, "started_at": stamp,
               "finished_at": None, "result": None, "error": ""}
        try:
            self.collection.insert_one(doc)
            return doc
        except DuplicateKeyError:
            pass
        # a crashed run: taken over once its lease has run out
        return self.collection.find_one_and_update(
            {"_id": doc["_id"], "state": "running", "lease_until": {"$lt": stamp}},
            {"$set": {"owner": owner, "lease_until": stamp + lease, "started_at": stamp},
             "$inc": {"attempts": 1}},
            return_document=ReturnDocument.AFTER)

    def finish(self, run: dict[str, Any], owner: str, result: Any = None, error: str = "") -> bool:
        """Records the outcome if `owner` still holds the run. A failed run is done too: the
        next due time tries again (a failure is not retried in a loop)."""
        outcome = self.collection.update_one(
            {"_id": run["_id"], "owner": owner, "state": "running"},
            {"$set": {"state": "failed" if error else "done", "finished_at": self.clock(),
                      "result": result, "error": error[:500]}})
        return outcome.modified_count == 1

    def recent(self, job: str, limit: int = 20) -> list[dict[str, Any]]:
        return list(self.collection.find({"job": job}).sort("due", -1).limit(limit))

    def prune(self, keep: timedelta) -> int:
        return self.collection.delete_many(
            {"state": {"$in": ["done", "failed"]}, "due": {"$lt": self.clock() - keep}}).deleted_count


class Scheduler:
    def __init__(self, jobs: list[Job], book: RunBook, owner: str):
        names = [j.name for j in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.jobs = jobs
        self.book = book
        self.owner = owner

    def tick(self) -> list[str]:
        """Runs every job whose latest due time this instance wins; returns their run ids."""
        ran = []
        for job in self.jobs:
            if not job.enabled():
                continue
            due = latest_due(job.every, self.book.clock())
            run = self.book.claim(job.name, due, self.owner, job.lease)
            if run is None:
                continue
            try:
                result = job.run(due)
            except Exception as exc:  # noqa: BLE001 - recorded on the run; the next due time retries
                log.exception("job %s (%s) failed", job.name, run["_id"])
                self.book.finish(run, self.owner, error=f"{type(exc).__name__}: {exc}")
            else:
                self.book.finish(run, self.owner, result=result)
            ran.append(run["_id"])
        return ran
