"""The scenario step machine on an injected clock, against the real document store: runs,
re-entry, stored timers under a lease, versions, the visit cap, a step done twice.
The sends, the activity lookup and the profile match are fakes (what they call is tested
in test_workflows.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from altcraft.domain import scenarios
from altcraft.domain.errors import Conflict
from altcraft.schema import migrate as migration
from altcraft.wiring import Platform
from tests.lib.harness import make_config
from tests.lib.workflows import welcome

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.at = T0

    def __call__(self):
        return self.at


@pytest.fixture(scope="module")
def control(harness, tmp_path_factory):
    from altcraft import config as cfg
    import json

    basedir = tmp_path_factory.mktemp("wfm")
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir)))
    config, _ = cfg.load(path)
    migration.run(config)
    platform = Platform(config)
    yield platform.control
    platform.close()


class World:
    def __init__(self, control, reentry="once", nodes=None, max_visits=5):
        control.workflow_runs.delete_many({})  # the module's own database: another test's timers go
        self.clock = Clock()
        self.store = scenarios.Scenarios(control, self.clock)
        self.sent: list[tuple[str, str, str]] = []
        self.opened: set[str] = set()
        self.machine = scenarios.Machine(self.store, self.send, self.activity, lambda run, c: True)
        added = self.store.add(1, "welcome", 1, nodes or welcome(), reentry=reentry, max_visits=max_visits)
        self.scenario = self.store.set_active(1, added["id"], True)
        self.scenario = self.store.get(1, added["id"])

    def send(self, run, node, mid):
        self.sent.append((run["profile_id"], node["id"], mid))

    def activity(self, run, kinds, campaign_id):
        assert kinds == ("open",)
        assert campaign_id == self.scenario["nodes"][1]["campaign_id"]
        return run["profile_id"] in self.opened

    def drain(self) -> int:
        """Steps every due run; how many steps."""
        steps = 0
        while (run := self.store.claim("w1")) is not None:
            assert self.machine.step(run)
            steps += 1
        return steps

    def run(self, run_id):
        return self.store.runs.find_one({"_id": run_id})


def test_the_welcome_scenario_on_the_test_clock(control):
    w = World(control)
    runs = {p: w.store.enter(w.scenario, p, f"key:{p}")[0]["_id"] for p in ("anna", "ivan")}
    w.opened.add("anna")
    w.drain()
    assert [(p, n) for p, n, _ in w.sent] == [("anna", "first"), ("ivan", "first")]
    assert all(w.run(r)["node"] == "wait" for r in runs.values())
    assert w.drain() == 0, "a wait that is not due ran"
    w.clock.at += timedelta(days=3)
    w.drain()
    assert sorted((p, n) for p, n, _ in w.sent) == [("anna", "first"), ("ivan", "first"), ("ivan", "reminder")]
    assert {w.run(r)["state"] for r in runs.values()} == {"exited"}
    counts = w.store.counts(w.scenario["id"])
    assert counts["first"] == {"entered": 2, "left": 2}
    assert counts["reminder"] == {"entered": 1, "left": 1}
    assert counts["done"] == {"entered": 2, "left": 2}


def test_a_step_done_twice_sends_one_message_id_and_counts_once(control):
    w = World(control)
    run, _ = w.store.enter(w.scenario, "anna", "key:1")
    stale = w.store.claim("w1")  # at the entry
    assert w.machine.step(stale)
    claimed = w.store.claim("w1")  # at the first send
    assert w.machine.step(claimed)
    w.machine.step(claimed)  # a second worker with the same claim: the same outcome
    assert len(w.sent) == 2 and w.sent[0] == w.sent[1], "a repeated send step got another message id"
    assert not w.machine.step(stale), "a step older than the run's was stored"
    assert (w.run(run["_id"])["node"], w.run(run["_id"])["step"]) == ("wait", 2), "the run went back"
    assert w.store.counts(w.scenario["id"])["first"] == {"entered": 1, "left": 1}


def test_a_claimed_timer_comes_back_when_its_worker_dies(control):
    w = World(control)
    run, _ = w.store.enter(w.scenario, "anna", "key:1")
    w.drain()  # entry, send, the wait started
    w.clock.at += timedelta(days=3)
    assert w.store.claim("dead", lease_seconds=30) is not None  # and then killed
    assert w.store.claim("w1") is None, "a leased timer was claimed again"
    w.clock.at += timedelta(seconds=31)
    w.drain()
    assert w.run(run["_id"])["state"] == "exited"
    assert [n for _, n, _ in w.sent] == ["first", "reminder"]


@pytest.mark.parametrize("policy, again_while_active, again_after_exit", [
    ("once", False, False), ("after_exit", False, True), ("always", True, True)])
def test_reentry_policies(control, policy, again_while_active, again_after_exit):
    w = World(control, reentry=policy)
    first, new = w.store.enter(w.scenario, "anna", "key:1")
    assert new and w.store.enter(w.scenario, "anna", "key:1") == (first, False)

    def enters(source):
        try:
            return w.store.enter(w.scenario, "anna", source)[1]
        except Conflict:
            return False

    assert enters("key:2") is again_while_active
    w.clock.at += timedelta(days=3)
    for _ in range(3):
        w.drain()
        w.clock.at += timedelta(days=3)
    assert w.run(first["_id"])["state"] == "exited"
    assert enters("key:3") is again_after_exit


def test_a_run_keeps_its_version(control):
    w = World(control)
    run, _ = w.store.enter(w.scenario, "anna", "key:1")
    w.drain()
    nodes = [n for n in welcome() if n["id"] != "reminder"]
    nodes[3]["no"] = "done"  # version 2: no reminder
    assert w.store.update(1, w.scenario["id"], nodes=nodes)["version"] == 2
    w.clock.at += timedelta(days=3)
    w.drain()
    assert [n for _, n, _ in w.sent] == ["first", "reminder"]
    assert w.run(run["_id"])["version"] == 1


def test_a_cycle_ends_at_the_visit_cap(control):
    nodes = welcome()
    nodes[4]["next"] = "wait"  # the reminder again and again, until the profile opens
    w = World(control, nodes=nodes, max_visits=3)
    run, _ = w.store.enter(w.scenario, "anna", "key:1")
    for _ in range(6):
        w.drain()
        w.clock.at += timedelta(days=3)
    assert w.run(run["_id"])["state"] == "capped"
    assert [n for _, n, _ in w.sent].count("reminder") == 3
