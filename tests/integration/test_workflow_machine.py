"""The scenario step machine on an injected clock, against the real document store: runs,
re-entry, stored timers under a lease, versions, the visit cap, a step done twice.
The sends, the activity lookup and the profile match are fakes (what they call is tested
in test_workflows.py)."""

from __future__ import annotations

import uuid
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
        self.clicked: set[str] = set()
        self.profiles: dict[str, dict] = {}
        self.updates: list[tuple[str, str]] = []
        self.calls: list[tuple[str, str, str]] = []
        self.machine = scenarios.Machine(
            self.store, self.send, self.activity, lambda run, c: True, profile=lambda run: self.profiles.get(
                run["profile_id"], {}), update=lambda run, node: self.updates.append((run["profile_id"], node["id"])),
            webhook=lambda run, node, eid: self.calls.append((run["profile_id"], node["id"], eid)),
            poll_seconds=600)
        added = self.store.add(1, "welcome", 1, nodes or welcome(), reentry=reentry, max_visits=max_visits)
        self.scenario = self.store.set_active(1, added["id"], True)
        self.scenario = self.store.get(1, added["id"])

    def send(self, run, node, mid):
        self.sent.append((run["profile_id"], node["id"], mid))

    def activity(self, run, kinds, campaign_id):
        assert campaign_id == self.scenario["nodes"][1]["campaign_id"]
        return run["profile_id"] in {("open",): self.opened, ("click",): self.clicked}[kinds]

    def drain(self) -> int:
        """Steps every due run; how many steps."""
        steps = 0
        while (run := self.store.claim("w1")) is not None:
            assert self.machine.step(run)
            steps += 1
        return steps

    def run(self, run_id):
        return self.store.runs.find_one({"_id": run_id})

    def step_batch(self, owner: str = "w1", limit: int = 100, flush: bool = True) -> int:
        """procworkflow's loop once: claims a batch, steps each run as far as it goes, stores
        the batch (or, flush=False, a worker killed before it stored anything)."""
        batch = scenarios.Batch(self.store)
        runs = self.store.claim_batch(owner, limit)
        for run in runs:
            self.machine.advance(run, batch)
        if flush:
            batch.flush()
        return len(runs)


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


def test_a_batch_steps_each_run_as_far_as_it_goes_and_a_lost_batch_is_stepped_again_alike(control):
    w = World(control)
    runs = [w.store.enter(w.scenario, p, f"key:{p}")[0]["_id"] for p in ("anna", "ivan", "olga")]
    w.opened.add("anna")
    assert w.step_batch("dead", flush=False) == 3  # entry and first send taken, then killed
    first = sorted(w.sent)
    assert len(first) == 3
    assert w.step_batch("w1") == 0, "a leased run was claimed again"
    assert {w.run(r)["step"] for r in runs} == {0}, "a batch that was never stored moved a run"
    w.clock.at += timedelta(seconds=31)  # a claim lasts one to two leases (scenario_claims.py)
    assert w.step_batch("w1") == 0, "a claim ended before its second slot"
    w.clock.at += timedelta(seconds=30)
    assert w.step_batch("w1") == 3
    assert sorted(w.sent[3:]) == first, "a batch stepped again sent other message ids"
    assert {(w.run(r)["node"], w.run(r)["step"]) for r in runs} == {("wait", 2)}
    assert w.step_batch("w1") == 0, "a wait that is not due ran"
    w.clock.at += timedelta(days=3)
    assert w.step_batch("w1") == 3
    assert {w.run(r)["state"] for r in runs} == {"exited"}
    assert sorted(n for p, n, _ in w.sent if n == "reminder") == ["reminder", "reminder"]
    counts = w.store.counts(w.scenario["id"])
    assert counts["first"] == {"entered": 3, "left": 3}, "a step stepped twice was logged twice"
    assert counts["reminder"] == {"entered": 2, "left": 2}
    assert counts["done"] == {"entered": 3, "left": 3}


def test_a_batch_claim_never_takes_a_run_another_claim_holds(control):
    w = World(control)
    for p in ("anna", "ivan", "olga", "petr"):
        w.store.enter(w.scenario, p, f"key:{p}")
    a = w.store.claim_batch("a", 3)
    b = w.store.claim_batch("b", 10)
    assert len(a) == 3 and len(b) == 1
    assert not {r["_id"] for r in a} & {r["_id"] for r in b}, "two workers claimed one run"


def test_a_batch_that_outlasted_its_claim_stores_only_runs_still_where_it_found_them(control):
    w = World(control)
    runs = [w.store.enter(w.scenario, p, f"key:{p}")[0]["_id"] for p in ("anna", "ivan")]
    slow = scenarios.Batch(w.store)
    for run in w.store.claim_batch("slow", 10):
        w.machine.advance(run, slow)
    w.clock.at += timedelta(seconds=60)  # the worker stalled past its claim; another claims the runs
    assert w.step_batch("w1") == 2
    assert sorted(w.sent[2:]) == sorted(w.sent[:2]), "the runs stepped again sent other message ids"
    stored = {r: w.run(r)["due_at"] for r in runs}
    assert slow.flush() == 0, "a batch whose claim had ended overwrote runs another worker had stepped"
    assert slow.late == 2, "runs stored after their claims had ended were not counted (procworkflow's batch size)"
    assert {r: w.run(r)["due_at"] for r in runs} == stored
    w.clock.at += timedelta(days=3)
    late = scenarios.Batch(w.store)
    for run in w.store.claim_batch("late", 10):
        w.machine.advance(run, late)
    w.clock.at += timedelta(seconds=60)  # late, but nobody else stepped them: stored all the same
    assert late.flush() == 2
    assert {w.run(r)["state"] for r in runs} == {"exited"}


def test_a_half_won_claim_is_given_back(control):
    from altcraft.domain import scenario_claims
    w = World(control)
    run, _ = w.store.enter(w.scenario, "anna", "key:1")
    slot = int(w.clock.at.timestamp() // 30)
    held = f"{scenario_claims.position(run)}:{slot + 1}"  # another worker's claim, one slot on
    claims = control[f"{scenario_claims.PREFIX}{int((slot + 1) * 30 // 3600)}"]
    claims.insert_one({"_id": held, "run": run["_id"], "owner": "other"})
    assert w.store.claim_batch("w1", 10) == [], "a run another claim holds was claimed"
    mine = f"{scenario_claims.position(run)}:{slot}"
    assert control[f"{scenario_claims.PREFIX}{int(slot * 30 // 3600)}"].find_one({"_id": mine}) is None, \
        "the half-won claim was kept, blocking the run after the other's claim ends"
    claims.delete_one({"_id": held})
    assert len(w.store.claim_batch("w1", 10)) == 1


def test_claims_of_hours_before_the_last_are_dropped(control):
    from altcraft.domain import scenario_claims
    w = World(control)
    w.store.enter(w.scenario, "anna", "key:1")
    assert len(w.store.claim_batch("w1", 10)) == 1
    old = f"{scenario_claims.PREFIX}{int(w.clock.at.timestamp() // 3600)}"
    assert old in control.list_collection_names()
    w.clock.at += timedelta(hours=1)
    w.store.leases._dropped_at = float("-inf")  # it looks at most once a minute
    w.store.claim_batch("w1", 10)
    assert old in control.list_collection_names(), "the last hour's claims were dropped"
    w.clock.at += timedelta(hours=1)
    w.store.leases._dropped_at = float("-inf")
    w.store.claim_batch("w1", 10)
    assert old not in control.list_collection_names(), "claims of two hours ago were kept"


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


# -- wait-for, split, update, webhook, wait until, scheduled entries ---------------------------
def flow(*middle: dict, entry: dict | None = None) -> list[dict]:
    """entry -> send "mail" -> the given nodes -> the exits "done" and "late" they name."""
    named = repr(middle)
    return [{"id": "start", "type": "entry", "trigger": entry or {"type": "api"}, "next": "mail"},
            {"id": "mail", "type": "send", "template_id": 1, "sender_id": 1, "next": middle[0]["id"]},
            *middle, *({"id": e, "type": "exit"} for e in ("done", "late") if f"'{e}'" in named)]


def path(w: World, run_id: str) -> list[str]:
    return [s["node"] for s in w.store.steps.find({"_id": {"$regex": f"^{run_id}:"}}).sort("at", 1)]


def test_a_wait_for_a_custom_event_takes_got_it_or_the_timeout_exit(control):
    from altcraft.domain import events
    w = World(control, nodes=flow({"id": "paid?", "type": "wait_for", "event": {"name": "paid"},
                                   "timeout": 86400, "next": "thanks", "timeout_next": "late"},
                                  {"id": "thanks", "type": "send", "template_id": 1, "sender_id": 1, "next": "done"}))
    payer, _ = w.store.enter(w.scenario, "anna", "key:1")
    idle, _ = w.store.enter(w.scenario, "ivan", "key:2")
    early = events.custom(1, 1, "ivan", "paid", {})
    w.drain()
    assert w.run(payer["_id"])["awaiting"] == "paid" and w.drain() == 0, "a wait-for without its event went on"
    assert w.store.deliver(events.custom(1, 1, "anna", "other", {})) == 0
    assert w.store.deliver(events.custom(1, 2, "anna", "paid", {})) == 0, "an event of another database woke a run"
    assert w.store.deliver(events.custom(1, 1, "anna", "paid", {})) == 1
    assert w.store.deliver(events.custom(1, 1, "anna", "paid", {})) == 0, "a second event counted again"
    w.clock.at += timedelta(seconds=1)
    w.drain()
    assert w.run(payer["_id"])["state"] == "exited" and path(w, payer["_id"])[-2:] == ["thanks", "done"]
    assert w.run(idle["_id"])["node"] == "paid?"
    w.clock.at += timedelta(days=1)
    w.drain()
    assert w.run(idle["_id"])["state"] == "exited" and path(w, idle["_id"])[-2:] == ["paid?", "late"]
    assert w.store.deliver(early) == 0, "an ended run was woken"
    assert [n for p, n, _ in w.sent if p == "ivan"] == ["mail"]
    outcomes = {s["outcome"] for s in w.store.steps.find({"node": "paid?", "scenario_id": w.scenario["id"]})}
    assert outcomes == {"got", "timed_out"}


def test_the_events_waited_for_are_those_of_every_version_of_the_accounts_scenarios(control):
    """procevent calls `deliver` only for these names: a name missing here is an event lost."""
    store = scenarios.Scenarios(control, Clock())
    account = int(uuid.uuid4().int % 10**6) + 10**6  # an account no other test of the module uses
    added = store.add(account, "waits", 1, flow({"id": "paid?", "type": "wait_for", "event": {"name": "paid"},
                                                 "timeout": 60, "next": "done", "timeout_next": "late"}))
    assert store.awaited(account) == ["paid"] and store.awaited(account + 1) == []
    store.update(account, added["id"], nodes=welcome())
    assert store.awaited(account) == ["paid"], "runs on the first version may still wait for it"


def test_an_event_marked_while_a_step_holds_the_run_is_not_lost(control):
    from altcraft.domain import events
    w = World(control, nodes=flow({"id": "paid?", "type": "wait_for", "event": {"name": "paid"},
                                   "timeout": 86400, "next": "done", "timeout_next": "late"}))
    run, _ = w.store.enter(w.scenario, "anna", "key:1")
    w.drain()
    w.store.runs.update_one({"_id": run["_id"]}, {"$set": {"due_at": w.clock.at}})  # woken (a lease ran out)
    claimed = w.store.claim("w1")
    w.store.deliver(events.custom(1, 1, "anna", "paid", {}))  # procevent, while the step runs
    assert not w.machine.step(claimed), "the stale step re-armed the timer over the event"
    assert w.store.claim("w2") is not None, "the run was left leased instead of due"
    w.store.runs.update_one({"_id": run["_id"]}, {"$set": {"lease_until": scenarios._EPOCH}})
    w.drain()
    assert path(w, run["_id"])[-2:] == ["paid?", "done"]


def test_a_wait_for_a_click_looks_again_until_the_timeout(control):
    w = World(control, nodes=flow({"id": "clicked?", "type": "wait_for", "event": {"clicked": "mail"},
                                   "timeout": 3600, "next": "done", "timeout_next": "late"}))
    clicker, _ = w.store.enter(w.scenario, "anna", "key:1")
    idle, _ = w.store.enter(w.scenario, "ivan", "key:2")
    w.drain()
    assert w.run(clicker["_id"])["due_at"] == T0 + timedelta(seconds=600), "not polled at poll_seconds"
    w.clock.at += timedelta(seconds=600)
    assert w.drain() == 2 and w.run(clicker["_id"])["node"] == "clicked?"
    w.clicked.add("anna")
    w.clock.at += timedelta(seconds=600)
    w.drain()
    assert path(w, clicker["_id"])[-2:] == ["clicked?", "done"]
    w.clock.at += timedelta(seconds=3600)
    w.drain()
    assert path(w, idle["_id"])[-2:] == ["clicked?", "late"]
    assert w.run(idle["_id"])["deadline"] is None, "the wait-for's fields were kept after it ended"


def test_a_random_split_takes_the_derived_branch_and_a_replay_the_same(control):
    w = World(control, nodes=flow({"id": "ab", "type": "split", "branches": [
        {"percent": 30, "next": "done"}, {"percent": 70, "next": "late"}]}))
    # two profiles for each branch, picked by the derivation (the shares: test_scenario_timing.py)
    picked: dict[int, list[int]] = {0: [], 1: []}
    for i in range(100):
        rid = scenarios.run_id(w.scenario["id"], f"p{i}", f"key:{i}")
        chosen = picked[scenarios.timing.split_branch(rid, "ab", 1, [30, 70])]
        if len(chosen) < 2:
            chosen.append(i)
    runs = [w.store.enter(w.scenario, f"p{i}", f"key:{i}")[0]["_id"] for i in picked[0] + picked[1]]
    w.drain()
    ends = {r: path(w, r)[-1] for r in runs}
    assert [ends[r] for r in runs] == ["done", "done", "late", "late"]
    counts = w.store.counts(w.scenario["id"])
    assert counts["done"]["entered"] == counts["late"]["entered"] == 2
    # a replay: the same step done again from the stored state stores the same branch
    again = World(control, nodes=flow({"id": "ab", "type": "split", "branches": [
        {"percent": 30, "next": "done"}, {"percent": 70, "next": "late"}]}))
    run, _ = again.store.enter(again.scenario, "anna", "key:1")
    for _ in range(2):
        again.machine.step(again.store.claim("w1"))
    at_split = again.store.claim("w1")
    assert again.machine.step(at_split)
    first = again.run(run["_id"])["node"]
    again.store.runs.update_one({"_id": run["_id"]}, {"$set": {k: at_split[k] for k in ("node", "step", "visits")}})
    again.store.steps.delete_many({"_id": {"$regex": f"^{run['_id']}:"}})
    assert again.machine.step(at_split) and again.run(run["_id"])["node"] == first


def test_update_and_webhook_nodes_call_their_effects_once_per_visit_with_one_event_id(control):
    w = World(control, nodes=flow({"id": "tag", "type": "update", "set": {"city": "Omsk"}, "next": "call"},
                                  {"id": "call", "type": "webhook", "endpoint_id": 4, "next": "done"}))
    run, _ = w.store.enter(w.scenario, "anna", "key:1")
    for _ in range(3):  # entry, mail, update
        claimed = w.store.claim("w1")
        assert w.machine.step(claimed)
    at_call = w.store.claim("w1")
    w.machine.step(at_call)
    w.machine.step(at_call)  # a second worker with the same claim
    w.drain()
    assert w.updates == [("anna", "tag")]
    assert len(w.calls) == 2 and w.calls[0] == w.calls[1], "a repeated webhook step got another event id"
    assert w.calls[0][2] == scenarios.message_id(w.run(run["_id"]), "call", 1)
    assert w.run(run["_id"])["state"] == "exited"


def test_waits_until_a_time_of_day_in_the_profiles_zone_and_until_a_date_field(control):
    w = World(control, nodes=flow({"id": "morning", "type": "wait", "next": "renewal",
                                   "until": {"time": "09:00", "zone": "UTC", "zone_field": "tz"}},
                                  {"id": "renewal", "type": "wait", "next": "done",
                                   "until": {"field": "renews", "offset_seconds": -86400}}))
    w.profiles["anna"] = {"tz": "Europe/Moscow", "renews": "2026-12-20"}
    w.profiles["ivan"] = {}
    anna, _ = w.store.enter(w.scenario, "anna", "key:1")
    ivan, _ = w.store.enter(w.scenario, "ivan", "key:2")
    w.drain()
    assert w.run(anna["_id"])["due_at"] == datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)  # 09:00 Moscow
    assert w.run(ivan["_id"])["due_at"] == datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)  # the node's zone
    w.clock.at = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)
    w.drain()
    assert w.run(anna["_id"])["due_at"] == datetime(2026, 12, 19, tzinfo=timezone.utc), "date field - 1 day"
    assert w.run(ivan["_id"])["node"] == "morning"
    w.clock.at = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    w.drain()
    assert w.run(ivan["_id"])["state"] == "exited", "a profile without the date field did not go on"
    w.clock.at = datetime(2026, 12, 19, tzinfo=timezone.utc)
    w.drain()
    assert w.run(anna["_id"])["state"] == "exited"


def test_segment_and_date_entries_enter_each_profile_once(control):
    seg = World(control, nodes=flow({"id": "x", "type": "exit"}, entry={"type": "segment", "segment_id": 3}))
    members = {3: ["anna", "ivan"]}
    birthdays = [("anna", "1990-12-03"), ("ivan", "1985-06-01"), ("olga", "2000-12-03")]
    control.workflows.update_many({"id": {"$ne": seg.scenario["id"]}}, {"$set": {"active": False}})
    date = seg.store.get(1, seg.store.add(1, "birthday", 1, flow(
        {"id": "x", "type": "exit"}, entry={"type": "date", "field": "birthday", "offset_days": 0}))["id"])
    seg.store.set_active(1, date["id"], True)

    def enter(at):
        return scenarios.enter_scheduled(seg.store, lambda a, s: iter(members[s]),
                                         lambda a, d, f: iter(birthdays), at)

    dec3 = datetime(2026, 12, 3, 10, tzinfo=timezone.utc)
    assert enter(dec3) == {seg.scenario["id"]: 2, date["id"]: 2}
    members[3].append("olga")
    assert enter(dec3 + timedelta(minutes=5)) == {seg.scenario["id"]: 1, date["id"]: 0}, "a repeat entered again"
    assert enter(dec3 + timedelta(days=1)) == {seg.scenario["id"]: 0, date["id"]: 0}
    runs = seg.store.runs.find({"scenario_id": date["id"]}, {"profile_id": 1})
    assert sorted(r["profile_id"] for r in runs) == ["anna", "olga"]
    control.workflows.update_many({"id": {"$in": [seg.scenario["id"], date["id"]]}}, {"$set": {"active": False}})
