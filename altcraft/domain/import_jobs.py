"""Import jobs: a file uploaded in the panel, checked (a dry run) and imported in the
background by procleadsaver.

One document per job in the account's database (`import_jobs`), its bad rows in
`import_errors` (job, run, line, field, reason). A job goes

    uploaded --check--> queued(check) --> running --> checked --import--> queued(import) --> running --> done
                                                   \\-> failed (the file as a whole cannot be read)

A worker claims a queued job, or a running one whose lease ran out (its worker died), and
checkpoints after every batch: the last line read, the counts, the new bad rows, and a
renewed lease. A job taken over resumes after the checkpoint; the rows of the batch the dead
worker had in hand are upserted again, which changes nothing (the upsert is idempotent).

Which accounts have work is kept in the control database (`import_pending`, one document
per account), so that a worker does not poll every account's database.

The validation is the import's own (altcraft.domain.importer): the dry run is the same code
with nothing written.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from pymongo import ReturnDocument
from pymongo.database import Database

from altcraft.domain import claims
from altcraft.domain.clock import now
from altcraft.domain.databases import ProfileDatabase
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.importer import FileError, Format, ImportReport, RowError, detect_format

RUNS = ("check", "import")
COUNTS = ("rows", "inserted", "updated", "unchanged", "failed")
# column names (normalised) that mean a standard field, beyond the field's own name
ALIASES = {"e_mail": "email", "mail": "email", "email_address": "email", "phone_number": "phone",
           "mobile": "phone", "tel": "phone", "telephone": "phone", "name": "first_name",
           "firstname": "first_name", "lastname": "last_name", "surname": "last_name"}


class LeaseLost(Exception):
    """Another worker took the job over: this one must write nothing more of it."""


class TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the file is larger than the limit of {limit} bytes")
        self.limit = limit


def save_upload(directory: Path, name: str, stream: BinaryIO, limit: int) -> tuple[Path, int, int]:
    """Stores an uploaded file as {directory}/<random>.<format>, readable by its owner only;
    returns its path, size and number of lines (for the progress bar). A file over `limit`
    bytes is removed and refused."""
    fmt = detect_format(Path(name or "file"))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{uuid.uuid4().hex}.{fmt}"
    size = lines = 0
    last = b""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(limit)
                out.write(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink()
        raise FileError("the file is empty")
    return path, size, lines + (last != b"\n")


def default_mapping(columns: Iterable[str], database: ProfileDatabase) -> dict[str, str]:
    """Each column to the field of the same name (or a usual alias of it), else "" (skip)."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        plain = re.sub(r"[\s\-.]+", "_", column.strip().lower())
        target = plain if plain in database.fields else ALIASES.get(plain, "")
        if target not in database.fields or target in taken:
            target = ""
        mapping[column] = target
        taken.add(target)
    return mapping


def check_mapping(mapping: dict[str, str], columns: list[str], database: ProfileDatabase) -> dict[str, str]:
    clean = {column: (mapping.get(column) or "") for column in columns}
    targets = [t for t in clean.values() if t]
    for column, target in clean.items():
        if target and target not in database.fields:
            raise Invalid(column, f"{target!r} is not a field of database {database.id}")
    doubled = sorted({t for t in targets if targets.count(t) > 1})
    if doubled:
        raise Invalid("mapping", f"more than one column for the field {', '.join(doubled)}")
    if database.key not in targets:
        raise Invalid("mapping", f"no column for the database's key ({database.key})")
    return clean


def _counts(report: ImportReport) -> dict[str, int]:
    return {"rows": report.rows, "inserted": report.inserted, "updated": report.updated,
            "unchanged": report.unchanged, "failed": report.failed}


class ImportJobs:
    """The jobs of one account."""

    def __init__(self, account_db: Database, account_id: int, control: Database):
        self.account_id = account_id
        self.collection = account_db.import_jobs
        self.errors = account_db.import_errors
        self.pending = control.import_pending
        self.claims = account_db.import_claims

    # -- the panel's side ----------------------------------------------------------------
    def create(self, database: ProfileDatabase, path: Path, filename: str, size: int, lines: int,
               columns: list[str], user: str) -> dict[str, Any]:
        doc = {"_id": uuid.uuid4().hex, "db_id": database.id, "state": "uploaded", "run": None,
               "file": {"name": filename, "path": str(path), "format": path.suffix[1:], "size": size,
                        "lines": lines},
               "columns": columns, "mapping": default_mapping(columns, database),
               "created_by": user, "created_at": now(), "started_at": None, "finished_at": None,
               "progress": {"line": 0, **dict.fromkeys(COUNTS, 0)}, "results": {},
               "error": "", "lease": None, "lease_until": None, "claims": 0}
        self.collection.insert_one(doc)
        return doc

    def get(self, db_id: int, job_id: str) -> dict[str, Any]:
        doc = self.collection.find_one({"_id": job_id, "db_id": db_id})
        if doc is None:
            raise NotFound(f"import {job_id} not found")
        return doc

    def list(self, db_id: int, limit: int = 50) -> list[dict[str, Any]]:
        return list(self.collection.find({"db_id": db_id}).sort("created_at", -1).limit(limit))

    def queue(self, db_id: int, job_id: str, run: str, database: ProfileDatabase,
              mapping: dict[str, str] | None = None) -> dict[str, Any]:
        """Queues the check (a dry run) or the import. The check may be repeated with another
        mapping until the import is queued; the import may follow a check still queued."""
        current = self.get(db_id, job_id)
        chosen = check_mapping(mapping if mapping is not None else current["mapping"],
                               current["columns"], database)
        allowed = [{"state": {"$in": ["uploaded", "checked"]}}, {"state": "queued", "run": "check"}]
        doc = self.collection.find_one_and_update(
            {"_id": job_id, "db_id": db_id, "$or": allowed},
            {"$set": {"state": "queued", "run": run, "mapping": chosen, "queued_at": now(),
                      "progress": {"line": 0, **dict.fromkeys(COUNTS, 0)}, "error": ""}},
            return_document=ReturnDocument.AFTER)
        if doc is None:
            raise Conflict(f"import {job_id} is {current['state']}: it cannot be queued again")
        self.errors.delete_many({"job": job_id, "run": run})
        self.pending.update_one({"_id": self.account_id}, {"$set": {"at": now()}}, upsert=True)
        return doc

    def bad_rows(self, job_id: str, run: str, limit: int | None = None) -> list[RowError]:
        cursor = self.errors.find({"job": job_id, "run": run}).sort([("line", 1), ("field", 1)])
        if limit:
            cursor = cursor.limit(limit)
        return [RowError(d["line"], d["field"], d["reason"]) for d in cursor]

    # -- the worker's side -------------------------------------------------------------
    def claim(self, owner: str, lease_seconds: float) -> dict[str, Any] | None:
        """A queued job, or a running one whose worker stopped renewing its lease. Each is
        first won in `import_claims` (domain/claims.py) under its next claim number, so two
        workers never run one job side by side on the FerretDB stand-in either."""
        stamp = now()
        lease = {"lease": owner, "lease_until": stamp + timedelta(seconds=lease_seconds)}
        stale = self.collection.find({"state": "running", "lease_until": {"$lt": stamp}}, {"claims": 1}).limit(5)
        queued = self.collection.find({"state": "queued"}, {"claims": 1}).sort("queued_at", 1).limit(5)
        for state, candidates, changes in (("running", stale, lease),
                                           ("queued", queued, {"state": "running", "started_at": stamp, **lease})):
            for job in candidates:
                number = job.get("claims", 0)
                if not claims.win(self.claims, f"{job['_id']}:{number + 1}", owner, lease_seconds):
                    continue
                doc = self.collection.find_one_and_update(
                    {"_id": job["_id"], "state": state, "claims": number},
                    {"$set": changes, "$inc": {"claims": 1}}, return_document=ReturnDocument.AFTER)
                if doc is not None:
                    return doc
        return None

    def resume_point(self, job: dict[str, Any]) -> tuple[int, dict[str, int]]:
        """Where a claimed job goes on: after its checkpoint's line, with its counts. Bad rows
        a dead worker recorded after its checkpoint are dropped: they are found again."""
        progress = job["progress"]
        self.errors.delete_many({"job": job["_id"], "run": job["run"], "line": {"$gt": progress["line"]}})
        return progress["line"], {k: progress[k] for k in COUNTS}

    def checkpoint(self, job_id: str, owner: str, line: int, base: dict[str, int], report: ImportReport,
                   new_errors: list[RowError], lease_seconds: float) -> None:
        """Records progress (after its bad rows) and renews the lease; LeaseLost if another
        worker holds the job now."""
        held = {"_id": job_id, "lease": owner, "state": "running"}
        if self.collection.count_documents(held, limit=1) == 0:
            raise LeaseLost(job_id)
        if new_errors:
            run = self.collection.find_one({"_id": job_id}, {"run": 1})["run"]
            self.errors.insert_many([{"job": job_id, "run": run, **e.as_dict()} for e in new_errors])
        counts = {k: base[k] + v for k, v in _counts(report).items()}
        done = self.collection.update_one(held, {"$set": {
            "progress": {"line": line, **counts},
            "lease_until": now() + timedelta(seconds=lease_seconds)}})
        if done.matched_count == 0:
            raise LeaseLost(job_id)

    def finish(self, job: dict[str, Any], owner: str, error: str = "") -> None:
        """The run's end: `checked` after a check, `done` after an import, `failed` with the
        file's error."""
        current = self.collection.find_one({"_id": job["_id"], "lease": owner, "state": "running"})
        if current is None:
            return
        state = "failed" if error else ("checked" if current["run"] == "check" else "done")
        results = dict(current.get("results") or {})
        if not error:
            results[current["run"]] = {k: current["progress"][k] for k in COUNTS}
        self.collection.update_one({"_id": job["_id"], "lease": owner}, {"$set": {
            "state": state, "error": error[:500], "results": results, "lease": None, "lease_until": None,
            **({"finished_at": now()} if state != "checked" else {})}})

    def release(self, job: dict[str, Any], owner: str) -> None:
        """A stopping worker hands its job back at once (the next claim resumes it)."""
        self.collection.update_one({"_id": job["_id"], "lease": owner, "state": "running"},
                                   {"$set": {"lease_until": now()}})

    def busy(self) -> bool:
        return self.collection.count_documents({"state": {"$in": ["queued", "running"]}}, limit=1) > 0


class ImportQueue:
    """Across accounts: claims the next job of any account with work."""

    def __init__(self, control: Database, jobs_of: Callable[[int], ImportJobs]):
        self.pending = control.import_pending
        self.jobs_of = jobs_of

    def claim(self, owner: str, lease_seconds: float) -> tuple[ImportJobs, dict[str, Any]] | None:
        for marker in list(self.pending.find().sort("at", 1)):
            jobs = self.jobs_of(marker["_id"])
            job = jobs.claim(owner, lease_seconds)
            if job is not None:
                return jobs, job
            if not jobs.busy():
                # gone only if nothing was queued since it was read
                self.pending.delete_one({"_id": marker["_id"], "at": marker["at"]})
        return None


def run_job(jobs: ImportJobs, job: dict[str, Any], owner: str, read: Callable[[dict[str, str]], Iterable],
            import_rows: Callable[..., ImportReport], batch: int, lease_seconds: float,
            should_stop: Callable[[], bool]) -> str:
    """Runs a claimed job to its end (or until `should_stop`); returns its state as this
    worker left it. `read(mapping)` gives the file's (line, row) pairs; `import_rows` is the
    importer bound to the job's database."""

    class Stopped(Exception):
        pass

    skip, base = jobs.resume_point(job)
    saved = 0

    def progress(report: ImportReport) -> None:
        nonlocal saved
        jobs.checkpoint(job["_id"], owner, max(report.last_line, skip), base, report, report.errors[saved:],
                        lease_seconds)
        saved = len(report.errors)
        if should_stop():
            raise Stopped

    try:
        import_rows(read(job["mapping"]), dry_run=job["run"] == "check", batch_size=batch,
                    skip_through=skip, progress=progress)
    except FileError as exc:
        jobs.finish(job, owner, error=str(exc))
        return "failed"
    except Stopped:
        jobs.release(job, owner)
        return "running"
    jobs.finish(job, owner)
    return "checked" if job["run"] == "check" else "done"
