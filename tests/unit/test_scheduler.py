"""proctask's scheduler on a fake clock: each due time runs once across instances, a crashed
run is retried after its lease, missed due times collapse into one run."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from altcraft.domain.scheduler import Job, RunBook, Scheduler, latest_due, run_id
from tests.lib.fake_collection import FakeCollection

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def instances(n: int, job_every=timedelta(hours=1), lease=timedelta(minutes=5), fail=None):
    clock, runs, collection = Clock(T0), [], FakeCollection()

    def work(due):
        runs.append(due)
        if fail and fail(due):
            raise RuntimeError("boom")
        return {"ok": 1}

    book = RunBook(collection, clock)
    schedulers = [Scheduler([Job("cleanup", job_every, work, lease=lease)], book, f"host{i}") for i in range(n)]
    return clock, runs, collection, schedulers


def test_due_times_are_the_same_for_every_instance():
    assert latest_due(timedelta(hours=1), T0 + timedelta(minutes=59)) == T0
    assert latest_due(timedelta(hours=1), T0 + timedelta(minutes=60)) == T0 + timedelta(hours=1)
    assert run_id("cleanup", T0) == "cleanup@2026-11-30T12:00:00Z"


def test_each_due_time_runs_once_across_instances():
    clock, runs, collection, schedulers = instances(3)
    for _ in range(2):
        for s in schedulers:
            s.tick()
    assert runs == [T0]
    clock.at = T0 + timedelta(minutes=30)
    assert [s.tick() for s in schedulers] == [[], [], []]
    clock.at = T0 + timedelta(hours=1, minutes=1)
    ticked = [s.tick() for s in schedulers]
    assert runs == [T0, T0 + timedelta(hours=1)]
    assert sum(map(len, ticked)) == 1
    assert collection.docs["cleanup@2026-11-30T13:00:00Z"]["state"] == "done"


def test_a_crashed_run_is_retried_after_its_lease_only():
    clock, runs, collection, schedulers = instances(2)
    book = schedulers[0].book
    crashed = book.claim("cleanup", T0, "dead-host")  # claimed, then the instance died
    assert crashed is not None
    schedulers[1].tick()
    assert runs == []  # the lease still holds
    clock.at = T0 + timedelta(minutes=5, seconds=1)
    schedulers[1].tick()
    schedulers[0].tick()
    assert runs == [T0]  # retried once, by one instance
    doc = collection.docs[run_id("cleanup", T0)]
    assert (doc["state"], doc["owner"], doc["attempts"]) == ("done", "host1", 2)
    assert not book.finish(crashed, "dead-host")  # the late original cannot overwrite it


def test_missed_due_times_collapse_into_the_latest():
    clock, runs, _, schedulers = instances(1)
    clock.at = T0 + timedelta(hours=5, minutes=10)
    schedulers[0].tick()
    schedulers[0].tick()
    assert runs == [T0 + timedelta(hours=5)]


def test_a_failed_run_is_recorded_and_not_repeated_until_the_next_due_time():
    clock, runs, collection, schedulers = instances(2, fail=lambda due: due == T0)
    for s in schedulers:
        s.tick()
    doc = collection.docs[run_id("cleanup", T0)]
    assert doc["state"] == "failed" and "boom" in doc["error"]
    clock.at = T0 + timedelta(hours=1)
    schedulers[0].tick()
    assert runs == [T0, T0 + timedelta(hours=1)]


def test_a_disabled_job_never_runs():
    clock, runs, collection = Clock(T0), [], FakeCollection()
    scheduler = Scheduler([Job("backup", timedelta(hours=1), runs.append, enabled=lambda: False)],
                          RunBook(collection, clock), "h")
    assert scheduler.tick() == [] and runs == [] and collection.docs == {}


def test_retention_drops_finished_trigger_sends_past_the_keep_only():
    from types import SimpleNamespace

    from altcraft.services.proctask import retention

    clock, sends = Clock(T0), FakeCollection()
    for _id, state, age in (("old-sent", "sent", 31), ("old-waiting", "waiting", 40), ("new-sent", "sent", 2)):
        sends.insert_one({"_id": _id, "state": state, "finished_at": None if state == "waiting" else T0 - timedelta(days=age)})
    book = RunBook(FakeCollection(), clock)
    result = retention(SimpleNamespace(trigger_sends=sends), book, timedelta(days=30), clock)(T0)
    assert result["trigger_sends"] == 1 and sorted(sends.docs) == ["new-sent", "old-waiting"]
