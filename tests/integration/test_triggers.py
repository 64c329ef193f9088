"""Trigger campaigns (#15): API calls and custom events through procevent and proctrigger to
the SMTP sink, on the real servers, with the processes under akd."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timezone

import pytest

from tests.lib import broker
from tests.lib.automation import Automation, html_of, to
from tests.lib.mta import Pipeline
from tests.lib.ports import free_port
from tests.lib.sink import Sink
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stand(harness, tmp_path_factory):
    """One pipeline for the module: procevent, proctrigger and akmtad started once."""
    vhost = broker.add_vhost(harness)
    basedir = tmp_path_factory.mktemp("trig") / "akd"
    basedir.mkdir()
    pipeline = Pipeline(harness, basedir, free_port(), vhost)
    sink_port = int(pipeline.config.MTA.ROUTES["*"].rsplit(":", 1)[1])
    with Sink(sink_port) as sink:
        automation = Automation(pipeline)
        # made before procevent starts; later ones reach it through the account's automation stamp
        automation.listening = {name: automation.trigger(trigger={"type": "event", "name": name})
                                for name in ("order_paid", "order_shipped")}
        automation.listening["news"] = automation.trigger(
            resource_id=2, trigger={"type": "subscription", "status": "subscribed", "resource_id": 2})
        pipeline.start("procevent", "proctrigger", "akmtad")
        yield automation, sink
        pipeline.stop()
    broker.delete_vhost(vhost)


def test_the_same_call_twice_with_one_idempotency_key_sends_one_message(stand):
    auto, sink = stand
    trigger = auto.trigger()
    rcpt = auto.profile()
    call = dict(id=trigger["id"], email=rcpt, data={"order": "A-1"}, idempotency_key="order-A-1")
    first = auto.api.ok("campaigns/triggers/start", **call)
    second = auto.api.ok("campaigns/triggers/start", **call)
    assert second == first
    wait_for(lambda: any(m["Subject"] == "Order A-1" for m in to(sink, rcpt)), 60, "the message")
    # a marker published after the message arrived: a second copy, published by the repeat
    # before that, would be at the sink by the time the marker is
    auto.api.ok("campaigns/triggers/start", id=trigger["id"], email=rcpt, data={"order": "marker"})
    wait_for(lambda: any(m["Subject"] == "Order marker" for m in to(sink, rcpt)), 60, "the marker message")
    orders = [m for m in to(sink, rcpt) if m["Subject"] == "Order A-1"]
    assert len(orders) == 1, f"{len(orders)} messages for one idempotency key"
    assert orders[0]["Message-ID"].startswith(f"<{first['message_id']}@")
    assert len(auto.sends(idempotency_key="order-A-1")) == 1


def test_a_custom_event_reaches_its_trigger_campaign_with_its_data_rendered(stand):
    auto, sink = stand
    trigger = auto.listening["order_paid"]  # order_shipped listens too, and must not fire
    rcpt = auto.profile(name="Ivan")
    posted = auto.api.ok("events/post", db_id=auto.db["id"], email=rcpt, name="order_paid",
                         data={"order": "B-7 <b>"})
    message = wait_for(lambda: to(sink, rcpt), 60, "the triggered message")[0]
    assert message["Subject"] == "Order B-7 <b>"
    assert "Order B-7 &lt;b&gt; for Ivan" in html_of(message)  # data rendered, HTML-escaped
    [send] = auto.sends(event_id=posted["event_id"])
    assert send["trigger_id"] == trigger["id"]
    wait_for(lambda: auto.sends(event_id=posted["event_id"])[0]["state"] == "sent", 30, "the send marked sent")
    assert len(auto.sends(profile_id=posted["profile_id"])) == 1, "an event set off a trigger it does not name"
    # bad input is named
    status, body = auto.api("events/post", db_id=auto.db["id"], email=rcpt, name="has space")
    assert status == 400 and body["error_text"].startswith("name:")


def test_a_trigger_made_while_procevent_runs_answers_the_next_event(stand):
    """procevent keeps an account's definitions in memory; the account's automation stamp
    makes it read them again, so an event posted right after the trigger was saved meets it."""
    auto, sink = stand
    warm = auto.profile()  # an event of this account, handled: the account's list is now held
    posted = auto.api.ok("events/post", db_id=auto.db["id"], email=warm, name="order_paid", data={"order": "W"})
    wait_for(lambda: auto.sends(event_id=posted["event_id"]), 60, "procevent to handle the first event")
    trigger = auto.trigger(trigger={"type": "event", "name": "cart_left"})
    rcpt = auto.profile()
    posted = auto.api.ok("events/post", db_id=auto.db["id"], email=rcpt, name="cart_left", data={"order": "L-1"})
    [send] = wait_for(lambda: auto.sends(event_id=posted["event_id"]), 30, "the new trigger's send")
    assert send["trigger_id"] == trigger["id"]
    auto.api.ok("campaigns/triggers/update", id=trigger["id"], active=False)
    posted = auto.api.ok("events/post", db_id=auto.db["id"], email=rcpt, name="cart_left", data={"order": "L-2"})
    marker = auto.api.ok("events/post", db_id=auto.db["id"], email=warm, name="order_paid", data={"order": "M"})
    wait_for(lambda: auto.sends(event_id=marker["event_id"]), 30, "the marker event's send")
    assert auto.sends(event_id=posted["event_id"]) == [], "an event after deactivation set off the trigger"


def test_a_delayed_trigger_survives_kill_9_of_proctrigger(stand):
    auto, sink = stand
    delay = 4
    trigger = auto.trigger(delay_seconds=delay)
    rcpt = auto.profile()
    answer = auto.api.ok("campaigns/triggers/start", id=trigger["id"], email=rcpt, data={"order": "C-3"})
    due = datetime.fromisoformat(answer["due_at"])
    wait_for(lambda: auto.sends(_id=answer["message_id"]), 30, "the send stored")
    victim = auto.pipeline.pid("proctrigger")
    os.kill(victim, signal.SIGKILL)
    assert datetime.now(timezone.utc) < due, "the kill came after the send was due: the test proves nothing"
    wait_for(lambda: (auto.pipeline.basedir / "pids" / "proctrigger.pid").exists()
             and auto.pipeline.pid("proctrigger") != victim, 60, "akd to restart proctrigger")
    wait_for(lambda: to(sink, rcpt), 60, "the delayed message")
    arrived = next(m.at for m in sink.messages if m.rcpt == rcpt)
    assert arrived >= due.timestamp(), "sent before its delay ran out"
    wait_for(lambda: auto.sends(_id=answer["message_id"])[0]["state"] == "sent", 30, "the send marked sent")
    assert len(to(sink, rcpt)) == 1


def test_import_and_start_adds_the_profile_and_sends_once_per_key(stand):
    auto, sink = stand
    trigger = auto.trigger()
    rcpt = f"new.{auto.profile()}"  # an address no profile has yet
    call = dict(trigger_id=trigger["id"], data={"email": rcpt, "first_name": "Olga"},
                subscriptions=[{"resource_id": 1, "channel": "email", "status": "subscribed"}],
                content={"order": "D-4"}, idempotency_key="welcome-D-4")
    first = auto.api.ok("campaigns/triggers/import_and_start", **call)
    assert auto.api.ok("campaigns/triggers/import_and_start", **call) == first
    message = wait_for(lambda: to(sink, rcpt), 60, "the message to the imported profile")[0]
    assert "Order D-4 for Olga" in html_of(message)
    assert auto.api.ok("profiles/get", db_id=auto.db["id"], email=rcpt)["id"] == first["profile_id"]


def test_sends_are_claimed_when_due_under_a_lease_on_an_injectable_clock(platform):
    from datetime import timedelta

    from altcraft.domain import triggers as domain
    clock = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    store = domain.Triggers(platform.control, clock=lambda: clock[0])
    trigger = {"id": 10**9 + os.getpid(), "account_id": 1, "db_id": 1, "delay_seconds": 60}
    send = domain.job(trigger, "p1", {}, idempotency_key="k", at=clock[0])
    assert store.enqueue(send)[1] and not store.enqueue(send)[1]  # stored once
    assert store.claim("a", send["_id"]) is None  # not due yet
    clock[0] += timedelta(seconds=60)
    assert store.claim("a", send["_id"], lease_seconds=30)["owner"] == "a"
    assert store.claim("b", send["_id"]) is None  # leased
    clock[0] += timedelta(seconds=31)  # "a" died: its lease ran out
    assert store.claim("b", send["_id"])["attempts"] == 2
    assert not store.finish(send["_id"], "a", "sent")  # "a" no longer holds it
    assert store.finish(send["_id"], "b", "sent")
    assert store.claim("c", send["_id"]) is None and store.find_send(send["_id"])["state"] == "sent"


def test_subscribing_through_the_api_sets_off_a_subscription_trigger(stand):
    auto, sink = stand
    rcpt = auto.profile()  # subscribed to resource 1: the trigger listens to resource 2
    auto.api.ok("profiles/update", db_id=auto.db["id"], email=rcpt,
                subscriptions=[{"resource_id": 2, "channel": "email", "status": "subscribed"}])
    message = wait_for(lambda: to(sink, rcpt), 60, "the message for the new subscription")[0]
    profile_id = auto.api.ok("profiles/get", db_id=auto.db["id"], email=rcpt)["id"]
    [send] = auto.sends(trigger_id=auto.listening["news"]["id"], profile_id=profile_id)
    assert send["event_id"] and not send["idempotency_key"]  # set off by the profile.subscribed event
    assert message["X-AK-Campaign"].split(".")[1] == str(auto.listening["news"]["id"])


def test_a_send_stored_by_its_worker_is_stored_leased_when_due_and_free_when_not(platform):
    from datetime import timedelta

    from altcraft.domain import triggers as domain
    clock = [datetime(2031, 1, 1, tzinfo=timezone.utc)]
    store = domain.Triggers(platform.control, clock=lambda: clock[0])
    now = {"id": 2 * 10**9 + os.getpid(), "account_id": 1, "db_id": 1, "delay_seconds": 0}
    later = {**now, "id": now["id"] + 1, "delay_seconds": 60}
    due = domain.job(now, "p1", {}, event_id="e1", at=clock[0])
    delayed = domain.job(later, "p2", {}, event_id="e2", at=clock[0])
    stored, new = store.enqueue(due, "a", lease_seconds=30)
    assert new and stored["owner"] == "a" and stored["attempts"] == 1
    assert store.claim("b", due["_id"]) is None, "a send stored leased was claimed by another worker"
    assert not store.enqueue(due, "b")[1], "a send was stored twice"
    assert store.enqueue(delayed, "a")[0]["owner"] is None, "a send not due yet was leased"
    clock[0] += timedelta(seconds=31)  # "a" died after storing it: its lease ran out
    assert store.claim("b", due["_id"])["attempts"] == 2
    assert store.finish(due["_id"], "b", "sent") and not store.finish(due["_id"], "a", "sent")
