"""procleadsaver: runs the panel's import jobs (altcraft.domain.import_jobs) in the background.

Claims the next job of any account under a lease of IMPORT.LEASE_SECONDS, reads its uploaded
file (on this host, under {BASEDIR}/run/imports) with the column mapping, and hands the rows
to the importer in batches of IMPORT.BATCH; after each batch the job's checkpoint moves and
the lease is renewed. A check is the same run with nothing written. Killed, the job is taken
over by the next claim after the lease ran out and resumes at its checkpoint; stopped
(SIGTERM), the job is handed back at once. A store away: the job is left to its lease, the
worker tries again after a back-off.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
from pathlib import Path

from altcraft.config import MainConfig
from altcraft.domain import importer
from altcraft.domain.import_jobs import ImportQueue, LeaseLost, run_job
from altcraft.wiring import Platform

log = logging.getLogger("altcraft.procleadsaver")
IDLE_SECONDS = 1.0  # how often an idle worker looks for work


def _reader(path: Path, fmt: importer.Format, known: set[str]):
    def read(mapping: dict[str, str]):
        with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as handle:
            yield from importer.read_rows(handle, fmt, known, mapping)
    return read


def work_once(platform: Platform, queue: ImportQueue, owner: str, stop: threading.Event) -> bool:
    """Claims and runs one job; False when there was none."""
    settings = platform.config.IMPORT
    claimed = queue.claim(owner, settings.LEASE_SECONDS)
    if claimed is None:
        return False
    jobs, job = claimed
    log.info("import %s of account %d: %s (claim %d, from line %d)", job["_id"], jobs.account_id,
             job["run"], job["claims"], job["progress"]["line"])
    try:
        profiles = platform.profiles(jobs.account_id, job["db_id"])
    except Exception as exc:  # the database was deleted meanwhile
        jobs.finish(job, owner, error=str(exc))
        return True
    read = _reader(Path(job["file"]["path"]), job["file"]["format"], set(profiles.database.fields))
    try:
        state = run_job(jobs, job, owner, read, functools.partial(importer.import_rows, profiles),
                        settings.BATCH, settings.LEASE_SECONDS, stop.is_set)
    except LeaseLost:
        log.warning("import %s: taken over by another worker, left to it", job["_id"])
        return True
    except OSError as exc:  # the file is gone: nothing can finish this job
        jobs.finish(job, owner, error=f"the uploaded file cannot be read: {exc.strerror or exc}")
        return True
    log.info("import %s: %s", job["_id"], state)
    if state in ("done", "failed"):
        Path(job["file"]["path"]).unlink(missing_ok=True)  # the job's record keeps what it did
    return True


def main(config: MainConfig, stop: threading.Event) -> None:
    owner = f"{socket.gethostname()}:{os.getpid()}"
    platform = Platform(config)
    queue = ImportQueue(platform.control, platform.import_jobs)
    backoff = 1.0
    try:
        while not stop.is_set():
            try:
                worked = work_once(platform, queue, owner, stop)
                backoff = 1.0
            except Exception as exc:  # a store away: the job's lease runs out, someone resumes it
                log.warning("import interrupted (%s: %s); again in %.0f s", type(exc).__name__,
                            str(exc)[:300], backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if not worked:
                stop.wait(IDLE_SECONDS)
    finally:
        platform.close()
