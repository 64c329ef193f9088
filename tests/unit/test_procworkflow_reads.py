"""procworkflow's reads: a version's graph once, a scenario again after its TTL, a template
and its senders once a batch of sends."""

from __future__ import annotations

from types import SimpleNamespace

from altcraft.services import mailout
from altcraft.services.procworkflow import BatchMailer, ReadOnce, next_size


class Counting:
    def __init__(self, doc):
        self.doc, self.reads = doc, 0

    def find_one(self, query, *args, **kwargs):
        self.reads += 1
        return dict(self.doc)


def store(now):
    control = SimpleNamespace(
        workflows=Counting({"id": 7, "account_id": 1, "resource_id": 1}),
        workflow_versions=Counting({"scenario_id": 7, "version": 2, "nodes": [{"id": "a", "type": "exit"}]}),
        workflow_runs=None, workflow_steps=None, automation_stamps=None)
    return ReadOnce(control, ttl=5.0, clock=lambda: now[0]), control


def test_a_version_is_read_once_a_scenario_again_after_its_ttl():
    now = [100.0]
    reads, control = store(now)
    for _ in range(3):
        assert reads.graph(7, 2) == {"a": {"id": "a", "type": "exit"}}
        assert reads.get(1, 7)["resource_id"] == 1
    assert control.workflow_versions.reads == 1
    assert control.workflows.reads == 1
    now[0] += 5.0
    reads.get(1, 7)
    reads.graph(7, 2)
    assert control.workflows.reads == 2, "a scenario was not read again after its TTL"
    assert control.workflow_versions.reads == 1, "an immutable version was read again"


def test_a_batch_of_sends_reads_a_template_its_senders_and_the_database_once(monkeypatch):
    reads = []
    monkeypatch.setattr(mailout.Mailer, "__init__", lambda self, *args: None)
    monkeypatch.setattr(mailout.Mailer, "profiles", lambda self, account, db: reads.append(("database", db)) or db)
    monkeypatch.setattr(mailout.Mailer, "template", lambda self, account, tid: reads.append(("template", tid)) or tid)
    monkeypatch.setattr(mailout.Mailer, "senders", lambda self, account, source: reads.append(("senders", source["id"]))
                        or source["sender_id"])
    mailer = BatchMailer()
    welcome = {"id": 31, "db_id": 1, "resource_id": 1, "sender_id": 5, "template_id": 8}
    reminder = {**welcome, "id": 32, "template_id": 9}
    for source in (welcome, welcome, reminder, welcome):
        assert mailer.template(1, source["template_id"]) == source["template_id"]
        assert mailer.senders(1, source) == 5
        assert mailer.profiles(1, source["db_id"]) == 1
    assert reads == [("template", 8), ("senders", 31), ("database", 1), ("template", 9), ("senders", 32)]
    mailer.forget()  # the next batch
    mailer.template(1, 8)
    mailer.profiles(1, 1)
    assert reads[-2:] == [("template", 8), ("database", 1)], "a template or database kept past its batch"


def test_a_batch_that_outlasts_its_claims_halves_the_next_and_a_quick_full_one_doubles_it():
    assert next_size(200, 200, 200, late=3, seconds=9.0, lease=3.0) == 100
    assert next_size(1, 200, 1, late=1, seconds=9.0, lease=3.0) == 1
    assert next_size(25, 200, 25, late=0, seconds=1.0, lease=3.0) == 50
    assert next_size(150, 200, 150, late=0, seconds=1.0, lease=3.0) == 200
    assert next_size(50, 200, 10, late=0, seconds=0.1, lease=3.0) == 50, "grown after a batch that was not full"
    assert next_size(50, 200, 50, late=0, seconds=2.0, lease=3.0) == 50, "grown after a slow batch"
