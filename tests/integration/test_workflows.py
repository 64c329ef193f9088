"""Scenarios (#15) on the real servers: the welcome scenario through procworkflow, akmtad
and the SMTP sink, opens recorded through the tracking event path (procactions to
ClickHouse), kill -9 of procworkflow during the wait; and the workflows/* API."""

from __future__ import annotations

import json
import os
import signal
import uuid
import urllib.request
from datetime import datetime, timezone

import pytest

from altcraft.domain import events as wire
from altcraft.domain import scenario_timing
from altcraft.domain.tracking import Link
from tests.lib import broker
from tests.lib.automation import Automation, to
from tests.lib.mta import Pipeline
from tests.lib.ports import free_port
from tests.lib.sink import Sink
from tests.lib.stand import publish_events as publish
from tests.lib.wait import wait_for
from tests.lib.webhook_receiver import Receiver
from tests.lib.workflows import welcome

pytestmark = pytest.mark.integration
THREE_DAYS = 3 * 86400
SCALE = 0.00005  # WORKFLOWS.TIME_SCALE: three days last 13 s
PROFILES, OPENERS = 20, 7


@pytest.fixture(scope="module")
def stand(harness, tmp_path_factory):
    vhost = broker.add_vhost(harness)
    basedir = tmp_path_factory.mktemp("flows") / "akd"
    basedir.mkdir()
    pipeline = Pipeline(harness, basedir, free_port(), vhost, settings={
        "WORKFLOWS": {"TIME_SCALE": SCALE}, "WEBHOOKS": {"ALLOW_NETWORKS": ["127.0.0.1/32"], "TIMEOUT_SECONDS": 2}})
    sink_port = int(pipeline.config.MTA.ROUTES["*"].rsplit(":", 1)[1])
    with Sink(sink_port) as sink:
        auto = Automation(pipeline)
        auto.reminder = auto.api.ok("templates/add", name="reminder", subject="Still there, {{ first_name }}?",
                                    html="<p>Reminder</p>")
        yield auto, sink
        pipeline.stop()
    broker.delete_vhost(vhost)


def test_the_welcome_scenario_survives_kill_9_during_the_wait(stand):
    auto, sink = stand
    auto.pipeline.start("procworkflow", "procactions", "akmtad", "procevent")
    nodes = welcome(template_id=auto.template["id"], sender_id=auto.sender_id,
                    reminder_template_id=auto.reminder["id"], wait_seconds=THREE_DAYS)
    scenario = auto.api.ok("workflows/add", name="welcome", db_id=auto.db["id"], nodes=nodes)
    auto.api.ok("workflows/activate", id=scenario["id"])
    first_campaign = next(n for n in scenario["nodes"] if n["id"] == "first")["campaign_id"]
    rcpts = [auto.profile(name=f"P{i}") for i in range(PROFILES)]
    ids = {}
    for rcpt in rcpts:
        ids[rcpt] = auto.api.ok("workflows/start", id=scenario["id"], email=rcpt, content={"order": "W-1"},
                                idempotency_key=f"welcome:{rcpt}")["profile_id"]
    openers, others = rcpts[:OPENERS], rcpts[OPENERS:]
    runs = auto.pipeline.platform.scenarios.runs

    # opens of the first message (its campaign id and the profiles are known), through the
    # tracking event path into ClickHouse; published at once so that the wait need not be long
    publish(auto.pipeline.config, [wire.action(Link("open", auto.account["id"], auto.db["id"], 1, first_campaign,
                                                    ids[r], 0, ""), "open", ip="", user_agent="")
                                   for r in openers])
    wait_for(lambda: auto.pipeline.platform.activity_lookup(auto.account["id"], ("open",), first_campaign,
                                                            datetime(2000, 1, 1, tzinfo=timezone.utc))
             >= {ids[r] for r in openers}, 60, "procactions to record the opens")
    wait_for(lambda: all(to(sink, r) for r in rcpts), 60, "the first message to every profile")

    in_wait = {"scenario_id": scenario["id"], "node": "wait", "waiting": {"$ne": None}}
    wait_for(lambda: runs.count_documents(in_wait) == PROFILES, 30, "every run in the wait")
    victim = auto.pipeline.pid("procworkflow")
    os.kill(victim, signal.SIGKILL)
    waiting = list(runs.find(in_wait, {"due_at": 1}))
    assert min(r["due_at"] for r in waiting) > datetime.now(timezone.utc), \
        "the kill came after the wait ended: the test proves nothing (machine too slow for TIME_SCALE)"
    wait_for(lambda: (auto.pipeline.basedir / "pids" / "procworkflow.pid").exists()
             and auto.pipeline.pid("procworkflow") != victim, 60, "akd to restart procworkflow")

    wait_for(lambda: runs.count_documents({"scenario_id": scenario["id"], "state": "exited"}) == PROFILES,
             90, "every run to exit")
    wait_for(lambda: all(len(to(sink, r)) == 2 for r in others), 60, "the reminders")
    for rcpt in rcpts:
        subjects = sorted(m["Subject"] for m in to(sink, rcpt))
        name = auto.api.ok("profiles/get", db_id=auto.db["id"], email=rcpt)["data"]["first_name"]
        expected = ["Order W-1"] + ([] if rcpt in openers else [f"Still there, {name}?"])
        assert subjects == sorted(expected), (rcpt, rcpt in openers, subjects)
    counts = auto.api.ok("workflows/get", id=scenario["id"])["counts"]
    assert counts["first"] == {"entered": PROFILES, "left": PROFILES}
    assert counts["reminder"] == {"entered": PROFILES - OPENERS, "left": PROFILES - OPENERS}
    assert counts["done"]["entered"] == PROFILES
    address = auto.pipeline.config.listen_address("procworkflow")
    with urllib.request.urlopen(f"http://{address.host}:{address.port}/metrics", timeout=10) as response:
        assert 'altcraft_workflow_steps_total{type="send"}' in response.read().decode()


def test_a_custom_event_enters_the_scenario_that_names_it(stand):
    auto, sink = stand  # procevent and procworkflow run since the test above
    nodes = [{"id": "start", "type": "entry", "trigger": {"type": "event", "name": "signed_up"}, "next": "hello"},
             {"id": "hello", "type": "send", "template_id": auto.template["id"], "sender_id": auto.sender_id,
              "next": "end"},
             {"id": "end", "type": "exit"}]
    scenario = auto.api.ok("workflows/add", name="on event", db_id=auto.db["id"], nodes=nodes)
    auto.api.ok("workflows/activate", id=scenario["id"])
    rcpt = auto.profile()
    status, body = auto.api("workflows/start", id=scenario["id"], email=rcpt)
    assert status == 409 and "entered by event" in body["error_text"]
    auto.api.ok("events/post", db_id=auto.db["id"], email=rcpt, name="signed_up", data={"order": "E-5"})
    assert wait_for(lambda: to(sink, rcpt), 60, "the scenario's message")[0]["Subject"] == "Order E-5"


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


def test_update_split_webhook_and_wait_for_through_procworkflow(stand):
    """A custom event enters; the update node sets a field, a subscription and a static
    segment; a 50/50 split calls one of two webhook events through prochook's outbox (signed,
    verified by the receiver); a wait-for "paid" takes its got-it edge for those who pay and
    its timeout exit for the others."""
    auto, sink = stand
    auto.pipeline.start("procworkflow", "procevent", "akmtad", "prochook")
    receiver = Receiver().start()
    try:
        hook = auto.api.ok("webhooks/add", url=receiver.base + "/flow", events=["workflow.none"])
        receiver.secrets["/flow"] = [hook["secret"]]
        segment = auto.api.ok("segments/add", name="flow buyers", db_id=auto.db["id"], kind="static",
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
