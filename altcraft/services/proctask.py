"""proctask: the scheduler of named jobs (domain/scheduler.py) inside an HTTP process.

Its port serves what every HTTP process serves (health, readiness, metrics); a thread of each
gunicorn worker ticks the scheduler every TASKS.TICK_SECONDS. Any number of instances (and
workers) may tick: each due time of a job runs once, guarded by its unique run record.

The jobs, registered here in code:
  retention  every TASKS.RETENTION_EVERY_MINUTES: drops finished trigger sends (and proctask's
             own run records) older than TASKS.KEEP_DAYS. The webhook outbox is pruned by
             prochook itself, import files by their job; neither is repeated here.
  backup     every TASKS.BACKUP_EVERY_HOURS (0, the default: off): `aktool backup create`.
             The distribution's systemd timer (altcraft-backup.timer) is the operator's
             default; this hook is for installs without it. Both take the maintenance flag,
             so a second backup meanwhile fails with a Conflict instead of running alongside.
  workflow_entries  every WORKFLOWS.ENTRY_EVERY_SECONDS: enters segment members and profiles
             whose date field (a birthday) is due into the active scenarios entered that way
             (domain/scenarios.py enter_scheduled; a repeat finds its runs).
Regular campaigns are launched by the campaign worker's own claim (schedule in the campaign),
not here; the A/B winner is chosen by that worker when the test's wait is over.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from typing import Any

from altcraft.config import MainConfig, resolve_path
from altcraft.domain.clock import now
from altcraft.domain.scheduler import Job, RunBook, Scheduler
from altcraft.http.service import create_service_app, dependency_checker
from altcraft.registry import Process

log = logging.getLogger("altcraft.proctask")
COLLECTION = "task_runs"


def retention(control: Any, book: RunBook, keep: timedelta, clock=now):
    def run(due: datetime) -> dict[str, int]:
        sends = control.trigger_sends.delete_many(
            {"state": {"$ne": "waiting"}, "finished_at": {"$lt": clock() - keep}}).deleted_count
        return {"trigger_sends": sends, "task_runs": book.prune(keep)}
    return run


def backup_command(config: MainConfig) -> list[str]:
    command = [sys.executable, "-m", "altcraft.aktool", "backup", "create", "--json",
               "--config", str(resolve_path(None))]
    if config.TASKS.BACKUP_ROOT:
        command += ["--root", config.TASKS.BACKUP_ROOT]
    return command


def backup(config: MainConfig, runner=subprocess.run):
    def run(due: datetime) -> dict[str, Any]:
        done = runner(backup_command(config), capture_output=True, text=True, timeout=6 * 3600)
        if done.returncode != 0:
            raise RuntimeError(f"aktool backup create exited {done.returncode}: {done.stderr.strip()[-300:]}")
        return {"exit": 0}
    return run


def workflow_entries(platform: Any):
    """Scenarios entered by a segment or a date field (domain/scenarios.py enter_scheduled)."""
    from altcraft.domain.scenarios import enter_scheduled

    def members(account_id: int, segment_id: int):
        for batch in platform.segments(account_id).profiles(segment_id):
            yield from (p["_id"] for p in batch)

    def date_values(account_id: int, db_id: int, field: str):
        # a scan of the profiles that have the field: month and day are compared here, as
        # the FerretDB stand-in has no $expr; once per ENTRY_EVERY_SECONDS
        collection = platform.profiles(account_id, db_id).collection
        for doc in collection.find({f"data.{field}": {"$exists": True}}, {f"data.{field}": 1}):
            yield doc["_id"], doc["data"].get(field)

    def run(due: datetime) -> dict[str, int]:
        return {str(k): v for k, v in enter_scheduled(platform.scenarios, members, date_values, due).items()}
    return run


def jobs(config: MainConfig, control: Any, book: RunBook, platform: Any = None) -> list[Job]:
    tasks = config.TASKS
    scheduled = [] if platform is None else [
        Job("workflow_entries", timedelta(seconds=config.WORKFLOWS.ENTRY_EVERY_SECONDS), workflow_entries(platform))]
    return scheduled + [
        Job("retention", timedelta(minutes=tasks.RETENTION_EVERY_MINUTES),
            retention(control, book, timedelta(days=tasks.KEEP_DAYS))),
        Job("backup", timedelta(hours=tasks.BACKUP_EVERY_HOURS or 1), backup(config),
            enabled=lambda: tasks.BACKUP_EVERY_HOURS > 0, lease=timedelta(hours=6, minutes=5)),
    ]


def _tick_forever(config: MainConfig, stop: threading.Event) -> None:
    from altcraft.wiring import Platform

    from altcraft.services.reconnect import run_until_stopped

    def attempt(stop: threading.Event) -> None:
        platform = Platform(config)
        try:
            book = RunBook(platform.control[COLLECTION], now)
            scheduler = Scheduler(jobs(config, platform.control, book, platform), book,
                                  f"{socket.gethostname()}:{os.getpid()}")
            while not stop.is_set():
                for run_id in scheduler.tick():
                    log.info("ran %s", run_id)
                stop.wait(config.TASKS.TICK_SECONDS)
        finally:
            platform.close()

    run_until_stopped(attempt, stop, "proctask scheduler", log)


def create_app(config: MainConfig, process: Process):
    app = create_service_app(process.name, dependency_checker(config, process.requires))
    stop = threading.Event()

    def start() -> None:
        threading.Thread(target=_tick_forever, args=(config, stop), name="proctask-scheduler",
                         daemon=True).start()
    # gunicorn forks its workers from this (preloaded) process: each worker ticks
    os.register_at_fork(after_in_child=start)
    return app
