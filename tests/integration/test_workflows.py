"""Scenarios (#15) on the real servers: the welcome scenario through procworkflow, akmtad
and the SMTP sink, opens recorded through real HTTP hits of the messages' signed pixels
(trkaction -> procactions -> ClickHouse), kill -9 of procworkflow during the sends and
again during the wait; one custom event reaching a trigger campaign, a scenario and a
webhook; and the workflows/* API.

The welcome scenario's size comes from the environment (docs/benchmarks.md, README):
  ALTCRAFT_WELCOME_PROFILES      profiles entered (default 30: the default run stays lean)
  ALTCRAFT_WELCOME_WAIT_SECONDS  how long its three days last (default 30 s; the kill during
                                 the wait needs every run in the wait before the first is due)
  ALTCRAFT_WELCOME_ENTRY         start (default): one workflows/start call a profile; batch:
                                 workflows/import_and_start_batch calls of 1,000 profiles
  ALTCRAFT_WELCOME_BATCH         procworkflow's WORKFLOWS.BATCH (default 1: the kill during the
                                 sends lands between two stored steps of 60 profiles)
  ALTCRAFT_WELCOME_LEASE_SECONDS procworkflow's WORKFLOWS.LEASE_SECONDS (default 3)
  ALTCRAFT_WELCOME_STORE         harness (default: the harness FerretDB, SQLite handler) or
                                 ferretdb-postgresql (a FerretDB on the PostgreSQL handler of its
                                 own for the module, tests/lib/ferretdb_pg.py)
A larger run needs pytest's per-test limit lifted: `--timeout 0`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections import Counter
from contextlib import ExitStack
from datetime import datetime, timezone

import pytest

from altcraft.domain import scenario_timing
from altcraft.stores.analytics import Analytics
from tests.lib import broker
from tests.lib.automation import Automation, by_rcpt, kill9, pixel_url, to
from tests.lib.ferretdb_pg import ferretdb_postgresql
from tests.lib.mta import Pipeline
from tests.lib.ports import free_port
from tests.lib.sink import Sink
from tests.lib.stand import http
from tests.lib.wait import wait_for
from tests.lib.webhook_receiver import Receiver
from tests.lib.workflows import welcome

pytestmark = pytest.mark.integration
THREE_DAYS = 3 * 86400
PROFILES = int(os.environ.get("ALTCRAFT_WELCOME_PROFILES", "60"))
OPENERS = PROFILES // 3  # the known subset whose first message is opened
WAIT = float(os.environ.get("ALTCRAFT_WELCOME_WAIT_SECONDS", "30"))
SCALE = WAIT / THREE_DAYS  # WORKFLOWS.TIME_SCALE
# WORKFLOWS.LEASE_SECONDS: a run a killed worker held is stepped again this soon; a batch that
# outlasts it halves the next (procworkflow.next_size), so a large run needs a longer one
LEASE = float(os.environ.get("ALTCRAFT_WELCOME_LEASE_SECONDS", "3"))
SLOW = max(60.0, PROFILES * 1.5)  # how long a phase that grows with the profiles may take (a cap)
POLL = max(0.2, PROFILES / 500)  # how often those phases look (on FerretDB each look reads every run)
ENTRY = os.environ.get("ALTCRAFT_WELCOME_ENTRY", "start")
BATCH = int(os.environ.get("ALTCRAFT_WELCOME_BATCH", "1"))
STORE = os.environ.get("ALTCRAFT_WELCOME_STORE", "harness")
assert ENTRY in ("start", "batch") and STORE in ("harness", "ferretdb-postgresql"), (ENTRY, STORE)


@pytest.fixture(scope="module")
def stand(harness, tmp_path_factory):
    with ExitStack() as stack:
        if STORE == "ferretdb-postgresql":
            harness = {**harness, "mongodb": stack.enter_context(
                ferretdb_postgresql(harness, tmp_path_factory.mktemp("ferretdb-pg")))}
        yield from _stand(harness, tmp_path_factory)


def _stand(harness, tmp_path_factory):
    vhost = broker.add_vhost(harness)
    basedir = tmp_path_factory.mktemp("flows") / "akd"
    basedir.mkdir()
    trk = free_port()
    pipeline = Pipeline(harness, basedir, free_port(), vhost, settings={
        # one run a batch: the kill during the sends lands between two batches' stored steps
        # (with 5 a batch and 30 profiles, two workers stored every first send before the kill on a
        # quiet machine; with 1 and 30, 18-24 of them)
        "WORKFLOWS": {"TIME_SCALE": SCALE, "LEASE_SECONDS": LEASE, "BATCH": BATCH},
        "WEBHOOKS": {"ALLOW_NETWORKS": ["127.0.0.1/32"], "TIMEOUT_SECONDS": 2},
        "TRACKING_BASE_URL": f"http://127.0.0.1:{trk}", "PROCESSES": {"trkaction": {"PORT": trk}}})
    sink_port = int(pipeline.config.MTA.ROUTES["*"].rsplit(":", 1)[1])
    with Sink(sink_port) as sink:
        auto = Automation(pipeline)
        auto.reminder = auto.api.ok("templates/add", name="reminder", subject="Still there, {{ first_name }}?",
                                    html="<p>Reminder</p>")
        pipeline.start("akmtad", "procactions", "trkaction")
        yield auto, sink
        pipeline.stop()
    broker.delete_vhost(vhost)


def phase(started: float, what: str) -> None:
    """A line of the run's progress (the heavy runs' figures in docs/benchmarks.md come from these)."""
    print(f"welcome: {time.monotonic() - started:7.1f} s  {what}  (load {os.getloadavg()[0]:.1f})", flush=True)


def kill_procworkflow(auto) -> int:
    """kill -9 of procworkflow (arbiter and workers); akd starts it again. The killed pid."""
    victim = auto.pipeline.pid("procworkflow")
    assert kill9(victim), "procworkflow was not running"
    return victim


def restarted(auto, victim: int) -> None:
    pids = auto.pipeline.basedir / "pids" / "procworkflow.pid"
    wait_for(lambda: pids.exists() and auto.pipeline.pid("procworkflow") != victim, 60,
             "akd to restart procworkflow")


def delivered(auto, campaign_id: int) -> Counter:
    """Per profile: the distinct delivered messages of a campaign ClickHouse holds."""
    store = Analytics(auto.pipeline.config.CLICKHOUSE_SYSTEM)
    try:
        rows = store.execute(
            f"SELECT profile_id, uniqExact(event_id) FROM {store.table('events')} WHERE account_id = %(a)s "
            "AND campaign_id = %(c)s AND kind = 'delivered' GROUP BY profile_id",
            {"a": auto.account["id"], "c": campaign_id})
    finally:
        store.close()
    return Counter(dict(rows))


def test_the_welcome_scenario_counts_survive_kill_9_during_the_sends_and_the_wait(stand):
    auto, sink = stand
    started = time.monotonic()
    nodes = welcome(template_id=auto.template["id"], sender_id=auto.sender_id,
                    reminder_template_id=auto.reminder["id"], wait_seconds=THREE_DAYS)
    scenario = auto.api.ok("workflows/add", name="welcome", db_id=auto.db["id"], nodes=nodes)
    auto.api.ok("workflows/activate", id=scenario["id"])
    campaign = {n["id"]: n.get("campaign_id") for n in scenario["nodes"]}
    tag = os.urandom(4).hex()
    rcpts = [f"w{i:05d}.{tag}@example.test" for i in range(PROFILES)]
    for at in range(0, PROFILES, 5000):
        report = auto.api.ok("profiles/import_batch", db_id=auto.db["id"], subscribe_resource_id=1,
                             data=[{"email": r, "first_name": f"P{i}"} for i, r in enumerate(rcpts[at:at + 5000], at)])
        assert not report["errors"], report["errors"][:3]
    profiles = auto.pipeline.platform.profiles(auto.account["id"], auto.db["id"]).collection
    ids = {d["data"]["email"]: d["_id"] for d in profiles.find({}, {"data.email": 1}) if d["data"]["email"] in rcpts}
    assert len(ids) == PROFILES

    # every profile entered by an API call, while procworkflow is not running yet
    if ENTRY == "batch":
        for at in range(0, PROFILES, 1000):
            answer = auto.api.ok("workflows/import_and_start_batch", id=scenario["id"], data=[
                {"data": {"email": r}, "content": {"order": "W-1"}, "idempotency_key": f"welcome:{r}"}
                for r in rcpts[at:at + 1000]])
            assert not answer["errors"] and answer["entered"] == len(rcpts[at:at + 1000]), answer["errors"][:3]
    else:
        for rcpt in rcpts:
            auto.api.ok("workflows/start", id=scenario["id"], profile_id=ids[rcpt], content={"order": "W-1"},
                        idempotency_key=f"welcome:{rcpt}")
    entered = time.monotonic()
    phase(started, f"{PROFILES} profiles entered ({ENTRY}, store {STORE})")
    runs = auto.pipeline.platform.scenarios.runs
    mine = {"scenario_id": scenario["id"]}

    # kill -9 during the sends: some runs past the first message, some not
    auto.pipeline.start("procworkflow")
    past_first = {**mine, "visits.first": {"$exists": True}}
    wait_for(lambda: runs.find_one(past_first, {"_id": 1}), SLOW, "the first sends", every=max(0.02, PROFILES / 50000))
    victim = kill_procworkflow(auto)
    sent_at_kill = runs.count_documents(past_first)
    print(f"welcome: {sent_at_kill} of {PROFILES} runs past the first message at the kill", flush=True)
    assert sent_at_kill < PROFILES, \
        "every first message was sent before the kill: the test proves nothing (raise ALTCRAFT_WELCOME_PROFILES)"
    restarted(auto, victim)
    wait_for(lambda: len({m.rcpt for m in sink.messages} & set(rcpts)) == PROFILES, SLOW,
             "the first message to every profile", every=POLL)
    phase(started, "the first message at the sink for every profile")

    # the known subset opens its first message: the pixel's signed URL, fetched over HTTP
    openers, others = rcpts[:OPENERS], rcpts[OPENERS:]
    received = by_rcpt(sink)
    for rcpt in openers:
        status, _, body = http(pixel_url(received[rcpt][0]))
        assert status == 200 and body.startswith(b"GIF"), (rcpt, status)
    wait_for(lambda: auto.pipeline.platform.activity_lookup(auto.account["id"], ("open",), campaign["first"],
                                                            datetime(2000, 1, 1, tzinfo=timezone.utc))
             == {ids[r] for r in openers}, SLOW, "procactions to record the opens", every=POLL)
    phase(started, f"{OPENERS} opens recorded")

    # kill -9 during the wait: every run waiting, none due yet
    in_wait = {**mine, "node": "wait", "waiting": {"$ne": None}}
    wait_for(lambda: runs.count_documents(in_wait) == PROFILES, SLOW, "every run in the wait", every=POLL)
    victim = kill_procworkflow(auto)
    waiting = list(runs.find(in_wait, {"due_at": 1}))
    assert len(waiting) == PROFILES and min(r["due_at"] for r in waiting) > datetime.now(timezone.utc), \
        "the kill came after the wait ended: the test proves nothing (raise ALTCRAFT_WELCOME_WAIT_SECONDS)"
    restarted(auto, victim)
    phase(started, f"killed in the wait, {len(waiting)} runs waiting, the first due in "
                   f"{(min(r['due_at'] for r in waiting) - datetime.now(timezone.utc)).total_seconds():.0f} s")

    wait_for(lambda: runs.count_documents({**mine, "state": "exited"}) == PROFILES, WAIT + SLOW, "every run to exit", every=POLL)
    phase(started, "every run exited")
    rest = set(others)
    wait_for(lambda: sum(m.rcpt in rest for m in list(sink.messages)) >= len(others) * 2, SLOW, "the reminders", every=POLL)
    opened = set(openers)

    def exactly_what_is_expected_at_the_sink():  # a repeat published by a killed step would be here
        received = by_rcpt(sink)
        for i, rcpt in enumerate(rcpts):
            subjects = sorted(m["Subject"] for m in received.get(rcpt, []))
            expected = ["Order W-1"] + ([] if rcpt in opened else [f"Still there, P{i}?"])
            assert subjects == sorted(expected), (rcpt, rcpt in opened, subjects)

    exactly_what_is_expected_at_the_sink()
    first, reminder = campaign["first"], campaign["reminder"]
    expected_first = Counter({ids[r]: 1 for r in rcpts})
    expected_reminder = Counter({ids[r]: 1 for r in others})
    wait_for(lambda: delivered(auto, first) == expected_first and delivered(auto, reminder) == expected_reminder,
             SLOW, "ClickHouse: one first message per profile, one reminder per non-opener", every=POLL)
    phase(started, f"ClickHouse: {PROFILES} first messages, {PROFILES - OPENERS} reminders")
    exactly_what_is_expected_at_the_sink()  # and no late copy arrived meanwhile
    counts = auto.api.ok("workflows/get", id=scenario["id"])["counts"]
    assert counts["first"] == {"entered": PROFILES, "left": PROFILES}
    assert counts["opened?"] == {"entered": PROFILES, "left": PROFILES}
    assert counts["reminder"] == {"entered": PROFILES - OPENERS, "left": PROFILES - OPENERS}
    assert counts["done"]["entered"] == PROFILES
    address = auto.pipeline.config.listen_address("procworkflow")
    with urllib.request.urlopen(f"http://{address.host}:{address.port}/metrics", timeout=10) as response:
        assert 'altcraft_workflow_steps_total{type="send"}' in response.read().decode()
    print(f"\nwelcome scenario: {PROFILES} profiles ({OPENERS} openers) entered in {entered - started:.1f} s, "
          f"killed after {sent_at_kill} first sends and again in the wait, done in {time.monotonic() - started:.1f} s")


def test_one_custom_event_reaches_a_trigger_campaign_a_scenario_and_a_webhook(stand):
    auto, sink = stand
    auto = Automation(auto.pipeline)  # an account of its own: its sends and runs are counted apart from the other tests'
    trigger = auto.trigger(trigger={"type": "event", "name": "signed_up"})
    nodes = [{"id": "start", "type": "entry", "trigger": {"type": "event", "name": "signed_up"}, "next": "hello"},
             {"id": "hello", "type": "send", "template_id": auto.template["id"], "sender_id": auto.sender_id, "next": "end"},
             {"id": "end", "type": "exit"}]
    scenario = auto.api.ok("workflows/add", name="on event", db_id=auto.db["id"], nodes=nodes)
    auto.api.ok("workflows/activate", id=scenario["id"])
    receiver = Receiver().start()
    try:
        hook = auto.api.ok("webhooks/add", url=receiver.base + "/shop", events=["custom.event"], description="shop")
        receiver.secrets["/shop"] = [hook["secret"]]
        auto.pipeline.start("procevent", "proctrigger", "procworkflow", "prochook")
        rcpt = auto.profile()
        status, body = auto.api("workflows/start", id=scenario["id"], email=rcpt)
        assert status == 409 and "entered by event" in body["error_text"]
        posted = auto.api.ok("events/post", db_id=auto.db["id"], email=rcpt, name="signed_up", data={"order": "E-5"})
        messages = wait_for(lambda: len(to(sink, rcpt)) == 2 and to(sink, rcpt), 60,
                            "the trigger campaign's and the scenario's messages")
        assert [m["Subject"] for m in messages] == ["Order E-5", "Order E-5"]
        [send] = auto.sends(event_id=posted["event_id"])
        assert send["trigger_id"] == trigger["id"]
        run = wait_for(lambda: auto.pipeline.platform.scenarios.runs.find_one(
            {"scenario_id": scenario["id"], "state": "exited"}), 30, "the scenario's run to end")
        assert run["profile_id"] == posted["profile_id"] and run["visits"] == {"start": 1, "hello": 1}
        got = wait_for(lambda: receiver.events("/shop"), 60, "the event at the webhook")
        assert len(got) == 1 and got[0]["data"]["name"] == "signed_up" and got[0]["data"]["data"] == {"order": "E-5"}
        assert receiver.at("/shop")[0].verified
    finally:
        receiver.stop()


def test_the_api_names_what_is_wrong_and_keeps_runs_to_their_entry(stand):
    auto, _ = stand
    nodes = welcome(template_id=auto.template["id"], sender_id=auto.sender_id)
    nodes[2]["next"] = "nowhere"
    status, body = auto.api("workflows/add", name="bad", db_id=auto.db["id"], nodes=nodes)
    assert status == 400 and body["error_text"] == "node 'wait'.next: no node 'nowhere' (dangling edge)"
    nodes = welcome(template_id=auto.template["id"] + 10_000, sender_id=auto.sender_id)
    status, body = auto.api("workflows/add", name="bad", db_id=auto.db["id"], nodes=nodes)
    assert status == 404 and body["error_text"].startswith("node 'first':"), body

    scenario = auto.api.ok("workflows/add", name="ok", db_id=auto.db["id"],
                           nodes=welcome(template_id=auto.template["id"], sender_id=auto.sender_id))
    rcpt = auto.profile()
    status, body = auto.api("workflows/start", id=scenario["id"], email=rcpt)
    assert status == 409 and "not active" in body["error_text"]
    auto.api.ok("workflows/activate", id=scenario["id"])
    first = auto.api.ok("workflows/start", id=scenario["id"], email=rcpt, idempotency_key="k")
    assert auto.api.ok("workflows/start", id=scenario["id"], email=rcpt, idempotency_key="k") == first
    status, body = auto.api("workflows/start", id=scenario["id"], email=rcpt, idempotency_key="other")
    assert status == 409 and "re-entry: once" in body["error_text"]
    updated = auto.api.ok("workflows/update", id=scenario["id"], nodes=[n for n in welcome(
        template_id=auto.template["id"], sender_id=auto.sender_id) if n["id"] != "reminder"] and
        [{**n, "no": "done"} if n["id"] == "opened?" else n for n in welcome(
            template_id=auto.template["id"], sender_id=auto.sender_id) if n["id"] != "reminder"])
    assert updated["version"] == 2 and first["version"] == 1
    assert auto.api.ok("workflows/get", id=scenario["id"])["nodes"][1]["campaign_id"] == \
        scenario["nodes"][1]["campaign_id"], "a send node's campaign id changed with the version"


def test_import_and_start_batch_upserts_enters_and_answers_per_item(stand):
    auto, _ = stand
    scenario = auto.api.ok("workflows/add", name="batch", db_id=auto.db["id"],
                           nodes=welcome(template_id=auto.template["id"], sender_id=auto.sender_id))
    known = auto.profile(name="Known")
    items = [{"data": {"email": known, "first_name": "Kept"}, "content": {"order": "B-1"}, "idempotency_key": "b0"},
             {"data": {"email": f"new.{uuid.uuid4().hex[:8]}@example.test"}, "idempotency_key": "b1"},
             {"data": {"first_name": "no key"}},
             {"data": {"email": known}, "idempotency_key": "b0"}]
    status, body = auto.api("workflows/import_and_start_batch", id=scenario["id"], data=items)
    assert status == 409 and "not active" in body["error_text"]
    auto.api.ok("workflows/activate", id=scenario["id"])
    answer = auto.api.ok("workflows/import_and_start_batch", id=scenario["id"], data=items[:3])
    assert answer["entered"] == 2 and [r["index"] for r in answer["runs"]] == [0, 1], answer
    assert [e["index"] for e in answer["errors"]] == [2] and "email" in answer["errors"][0]["error"], answer
    runs = auto.pipeline.platform.scenarios.runs
    stored = runs.find_one({"_id": answer["runs"][0]["run_id"]})
    assert stored["data"] == {"order": "B-1"} and stored["state"] == "active"
    assert auto.api.ok("profiles/get", db_id=auto.db["id"], email=known)["data"]["first_name"] == "Kept"
    # a repeat with the same keys enters nothing more and answers the same runs; another key
    # for a profile already in the scenario is refused by its re-entry policy (once)
    again = auto.api.ok("workflows/import_and_start_batch", id=scenario["id"],
                        data=[items[3], items[1], {**items[1], "idempotency_key": "b2"}])
    assert again["entered"] == 0 and [r["run_id"] for r in again["runs"]] == \
        [answer["runs"][0]["run_id"], answer["runs"][1]["run_id"]], again
    assert [e["index"] for e in again["errors"]] == [2] and "re-entry: once" in again["errors"][0]["error"]
    assert runs.count_documents({"scenario_id": scenario["id"]}) == 2


def test_update_split_webhook_and_wait_for_through_procworkflow(stand):
    """A custom event enters; the update node sets a field, a subscription and a static
    segment; a 50/50 split calls one of two webhook events through prochook's outbox (signed,
    verified by the receiver); a wait-for "paid" takes its got-it edge for those who pay and
    its timeout exit for the others."""
    auto, sink = stand
    auto = Automation(auto.pipeline)  # an account of its own: its sends and runs are counted apart from the other tests'
    auto.pipeline.start("procworkflow", "procevent", "akmtad", "prochook")
    receiver = Receiver().start()
    try:
        hook = auto.api.ok("webhooks/add", url=receiver.base + "/flow", events=["workflow.none"])
        receiver.secrets["/flow"] = [hook["secret"]]
        segment = auto.api.ok("segments/add", name="flow buyers", db_id=auto.db["id"], is_static=True)  # by hand
        filled = auto.api.ok("segments/add", name="from a condition", db_id=auto.db["id"], kind="static",
                             condition={"field": "city", "op": "eq", "value": "Nowhere"})
        nodes = [
            {"id": "start", "type": "entry", "trigger": {"type": "event", "name": "checkout"}, "next": "tag"},
            {"id": "tag", "type": "update", "set": {"city": "Flowtown"}, "segment": {"id": segment["id"],
             "action": "add"}, "subscription": {"resource_id": 2, "status": "subscribed"}, "next": "ab"},
            {"id": "ab", "type": "split", "branches": [{"percent": 50, "next": "hook_a"},
                                                       {"percent": 50, "next": "hook_b"}]},
            {"id": "hook_a", "type": "webhook", "endpoint_id": hook["id"], "event": "workflow.a", "next": "paid?"},
            {"id": "hook_b", "type": "webhook", "endpoint_id": hook["id"], "event": "workflow.b", "next": "paid?"},
            {"id": "paid?", "type": "wait_for", "event": {"name": "paid"}, "timeout": 2 * 86400,
             "next": "thanks", "timeout_next": "done"},
            {"id": "thanks", "type": "send", "template_id": auto.template["id"], "sender_id": auto.sender_id,
             "next": "done"},
            {"id": "done", "type": "exit"}]
        bad = [dict(n, set={"nope": 1}) if n["id"] == "tag" else n for n in nodes]
        status, body = auto.api("workflows/add", name="bad", db_id=auto.db["id"], nodes=bad)
        assert status == 400 and body["error_text"] == \
            f"node 'tag'.set.nope: 'nope' is not a field of database {auto.db['id']}", body
        by_condition = [dict(n, segment={"id": filled["id"], "action": "add"}) if n["id"] == "tag" else n
                        for n in nodes]
        status, body = auto.api("workflows/add", name="bad", db_id=auto.db["id"], nodes=by_condition)
        assert status == 400 and body["error_text"].startswith(
            f"node 'tag'.segment.id: segment {filled['id']} is not filled by hand"), body
        scenario = auto.api.ok("workflows/add", name="checkout", db_id=auto.db["id"], nodes=nodes)
        auto.api.ok("workflows/activate", id=scenario["id"])
        rcpts = [auto.profile(name=f"F{i}") for i in range(4)]
        payers = rcpts[:2]
        for rcpt in rcpts:
            auto.api.ok("events/post", db_id=auto.db["id"], email=rcpt, name="checkout", data={"order": "F-1"})
        runs = auto.pipeline.platform.scenarios.runs
        mine = {"scenario_id": scenario["id"]}
        wait_for(lambda: runs.count_documents({**mine, "awaiting": "paid"}) == 4, 60, "every run at the wait-for")
        deadline = min(r["deadline"] for r in runs.find(mine))
        for rcpt in payers:
            auto.api.ok("events/post", db_id=auto.db["id"], email=rcpt, name="paid", data={"order": "F-1"})
        wait_for(lambda: runs.count_documents({**mine, "state": "exited"}) == 4, 60, "every run to exit")
        wait_for(lambda: len(receiver.processed) == 4, 60, "the four webhook calls")

        by_run = {r["profile_id"]: r for r in runs.find(mine)}
        ids = {rcpt: auto.api.ok("profiles/get", db_id=auto.db["id"], email=rcpt)["id"] for rcpt in rcpts}
        steps = auto.pipeline.platform.scenarios.steps
        for rcpt in rcpts:
            run = by_run[ids[rcpt]]
            waited = steps.find_one({"_id": {"$regex": f"^{run['_id']}:"}, "node": "paid?"})
            assert waited["outcome"] == ("got" if rcpt in payers else "timed_out"), (rcpt, waited)
            assert [m["Subject"] for m in to(sink, rcpt)] == (["Order F-1"] if rcpt in payers else [])
            profile = auto.api.ok("profiles/get", db_id=auto.db["id"], email=rcpt)
            assert profile["data"]["city"] == "Flowtown"
            assert {(s["resource_id"], s["status"]) for s in profile["subscriptions"]} >= {(2, "subscribed")}
        got = steps.find({"scenario_id": scenario["id"], "node": "paid?", "outcome": "got"})
        assert all(s["at"] < deadline for s in got), "a payer's event came after the timeout could fire"
        members = auto.pipeline.platform.account_db(auto.account["id"]).segment_members
        assert {m["profile_id"] for m in members.find({"segment_id": segment["id"]})} == set(ids.values())

        calls = [d for d in receiver.deliveries if d.path == "/flow"]
        assert all(d.verified for d in calls) and len({d.msg_id for d in calls}) == 4
        chosen = {}
        for delivery in calls:
            sent = json.loads(delivery.body)
            chosen[sent["data"]["profile_id"]] = sent["type"]
            assert sent["data"]["scenario_id"] == scenario["id"] and sent["data"]["data"] == {"order": "F-1"}
        assert chosen == {r["profile_id"]: ["workflow.a", "workflow.b"][scenario_timing.split_branch(
            r["_id"], "ab", 1, [50, 50])] for r in by_run.values()}, "a run took another branch than derived"
        counts = auto.api.ok("workflows/get", id=scenario["id"])["counts"]
        assert sum(counts.get(n, {}).get("entered", 0) for n in ("hook_a", "hook_b")) == 4
        assert counts["thanks"] == {"entered": 2, "left": 2}
    finally:
        receiver.stop()


def test_segment_and_birthday_entries_from_proctasks_job(stand):
    """proctask's workflow_entries job against the real stores (called here at a chosen due
    time rather than waiting for proctask's tick): a segment's member and a profile whose
    birthday is today enter once each; procworkflow mails them."""
    from altcraft.services.proctask import workflow_entries

    auto, sink = stand
    auto.pipeline.start("procworkflow", "akmtad")
    due = datetime.now(timezone.utc)
    mailed = {}
    for name, city, birthday in (("member", "Segtown", "1990-01-01"), ("born", "Elsewhere",
                                                                       f"1990-{due:%m-%d}".replace("02-29", "02-28")),
                                 ("neither", "Elsewhere", "1990-01-01" if due.strftime("%m-%d") != "01-01" else "1990-06-01")):
        mailed[name] = f"{name}-{uuid.uuid4().hex[:8]}@example.test"
        auto.api.ok("profiles/add", db_id=auto.db["id"], data={"email": mailed[name], "first_name": name, "city": city,
                                                                 "birthday": birthday},
                    subscriptions=[{"resource_id": 1, "channel": "email", "status": "subscribed"}])
    segment = auto.api.ok("segments/add", name="segtown", db_id=auto.db["id"],
                          condition={"field": "city", "op": "eq", "value": "Segtown"})
    made = {}
    for kind, trigger in (("segment", {"type": "segment", "segment_id": segment["id"]}),
                          ("date", {"type": "date", "field": "birthday"})):
        nodes = [{"id": "start", "type": "entry", "trigger": trigger, "next": "hello"},
                 {"id": "hello", "type": "send", "template_id": auto.template["id"], "sender_id": auto.sender_id,
                  "next": "end"}, {"id": "end", "type": "exit"}]
        made[kind] = auto.api.ok("workflows/add", name=kind, db_id=auto.db["id"], nodes=nodes)
        auto.api.ok("workflows/activate", id=made[kind]["id"])
    status, body = auto.api("workflows/add", name="bad", db_id=auto.db["id"], nodes=[
        {"id": "start", "type": "entry", "trigger": {"type": "date", "field": "city"}, "next": "end"},
        {"id": "end", "type": "exit"}])
    assert status == 400 and body["error_text"].startswith("node 'start'.trigger.field: 'city' is a string field")

    job = workflow_entries(auto.pipeline.platform)
    result = job(due)
    assert result[str(made["segment"]["id"])] == 1 and result[str(made["date"]["id"])] == 1, result
    assert job(due) == {k: 0 for k in result}, "a second tick entered again"
    runs = auto.pipeline.platform.scenarios.runs
    for kind, name in (("segment", "member"), ("date", "born")):
        (run,) = runs.find({"scenario_id": made[kind]["id"]})
        assert run["profile_id"] == auto.api.ok("profiles/get", db_id=auto.db["id"], email=mailed[name])["id"]
    wait_for(lambda: to(sink, mailed["member"]) and to(sink, mailed["born"]), 60, "the entered profiles' mail")
    assert to(sink, mailed["neither"]) == []
    for scenario in made.values():
        auto.api.ok("workflows/deactivate", id=scenario["id"])
