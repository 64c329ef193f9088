"""Outgoing webhooks end to end: events published to altcraft.events, prochook under akd on
the real broker and document store, the v1.1 API, and a loopback receiver (allowed in this
main.json's WEBHOOKS.ALLOW_NETWORKS) that verifies signatures with `standardwebhooks` and
de-duplicates by webhook-id. Retries run on WEBHOOKS.TIME_SCALE = 0.001 (5 s -> 5 ms)."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from altcraft import registry
from altcraft.domain import events as wire
from altcraft.domain import webhooks
from altcraft.domain.tracking import Link
from altcraft.services.api import create_app
from altcraft.wiring import Platform
from tests.lib import broker as test_broker
from tests.lib.api import Client, make_account
from tests.lib.stand import campaign_id, make_stand
from tests.lib.wait import wait_for
from tests.lib.webhook_receiver import Receiver, by_id

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEBHOOKS_CONFIG = {"ALLOW_NETWORKS": ["127.0.0.1/32"], "TIME_SCALE": 0.001, "TIMEOUT_SECONDS": 1,
                   "CONCURRENCY": 4}


@pytest.fixture(scope="module")
def hooks(harness, tmp_path_factory):
    """One stand for the module: prochook under akd, the API, a receiver and two accounts."""
    vhost = test_broker.add_vhost(harness)
    basedir = tmp_path_factory.mktemp("hooks") / "akd"
    basedir.mkdir()
    stand = make_stand(harness, basedir, vhost, WEBHOOKS=WEBHOOKS_CONFIG)
    platform = Platform(stand.config)
    token, _ = platform.tokens.create("admin")
    admin = Client(create_app(stand.config, registry.get("api")).test_client(), token)
    tag = uuid.uuid4().hex[:6]
    account, client = make_account(admin, f"hooks-{tag}")
    other_account, other = make_account(admin, f"hooks-other-{tag}")
    receiver = Receiver().start()
    stand.start("prochook")
    yield stand, client, account["id"], other, other_account["id"], receiver, platform
    stand.stop()
    receiver.stop()
    platform.close()
    test_broker.delete_vhost(vhost)


def open_event(account_id: int, profile: str = "p1") -> tuple[str, str, bytes]:
    link = Link("open", account_id, 1, 1, campaign_id(), profile, 0, "")
    return wire.action(link, "open", ip="203.0.113.9", user_agent="test", now=datetime.now(timezone.utc).timestamp())


def add_hook(client: Client, receiver: Receiver, path: str, events=("#",), answers=None) -> dict:
    hook = client.ok("webhooks/add", url=receiver.base + path, events=list(events), description=path)
    receiver.secrets[path] = [hook["secret"]]
    if answers:
        receiver.answers[path] = answers
    return hook


def test_event_arrives_signed_and_rotation_signs_with_both_secrets(hooks):
    stand, client, account_id, other, other_id, receiver, _ = hooks
    hook = add_hook(client, receiver, "/signed", events=["action.open"])
    assert hook["secret"].startswith("whsec_") and "secret" not in client.ok("webhooks/get", id=hook["id"])
    event_id, _, _ = first = open_event(account_id)
    bounce = wire.delivery(wire.DeliveryFacts("m@x", "a@example.com", account_id, 1), "bounced_hard", 1,
                           ip="", detail="")  # not in the filter
    stand.publish([first, bounce, open_event(other_id)])  # the other account's event is not ours
    delivered = wait_for(lambda: receiver.events("/signed"), what="the open event at the receiver")
    got = receiver.at("/signed")[0]
    assert got.verified and Webhook(hook["secret"]).verify(got.body, got.headers)
    assert got.msg_id == webhooks.message_id(hook["id"], event_id)
    assert delivered[0]["type"] == "action.open" and delivered[0]["data"]["event_id"] == event_id

    old = hook["secret"]
    rotated = client.ok("webhooks/rotate_secret", id=hook["id"], overlap_hours=1)
    assert rotated["secret"] != old and rotated["previous_secret_expires_at"]
    receiver.secrets["/signed"] = [old, rotated["secret"]]  # each one must verify
    stand.publish([open_event(account_id, "p2")])
    wait_for(lambda: len(receiver.events("/signed")) == 2, what="the event after the rotation")
    second = receiver.at("/signed")[-1]
    assert second.verified and len(second.headers["webhook-signature"].split(" ")) == 2
    log = client.ok("webhooks/log", webhook_id=hook["id"])
    assert {e["type"] for e in log} == {"action.open"} and len(log) == 2  # the bounce was filtered out
    assert other.ok("webhooks/list") == []  # tenants see their own webhooks only
    status, body = other("webhooks/get", id=hook["id"])
    assert status == 404 and "not found" in body["error_text"]
    status, body = other("webhooks/log", webhook_id=hook["id"])
    assert status == 404


def test_500_then_200_is_delivered_after_the_retry_and_replay_keeps_the_id(hooks):
    stand, client, account_id, _, _, receiver, _ = hooks
    hook = add_hook(client, receiver, "/flaky", answers=[500, 200])
    stand.publish([open_event(account_id)])
    wait_for(lambda: receiver.events("/flaky"), what="the event after a 500")
    attempts = receiver.at("/flaky")
    assert [d.status for d in attempts] == [500, 200]
    assert attempts[0].msg_id == attempts[1].msg_id  # the same webhook-id on the retry
    entry = wait_for(lambda: [e for e in client.ok("webhooks/log", webhook_id=hook["id"])
                              if e["state"] == "delivered"], what="the delivered entry")[0]
    assert [a["status"] for a in entry["log"]] == [500, 200] and entry["attempts"] == 2
    assert client.ok("webhooks/replay", id=[entry["id"]]) == {"replayed": 1}
    wait_for(lambda: len(receiver.at("/flaky")) == 3, what="the replayed message")
    assert receiver.at("/flaky")[-1].msg_id == entry["id"]
    assert receiver.processed.count(entry["id"]) == 1  # the receiver's de-duplication holds


def test_a_custom_event_reaches_a_webhook(hooks):
    """events/post's custom event, as domain/events.py encodes it for procevent, is a
    webhook event too (prochook decodes every kind on the exchange)."""
    stand, client, account_id, _, _, receiver, _ = hooks
    add_hook(client, receiver, "/custom", events=["custom.event"])
    event = wire.custom(account_id, 1, "p1", "cart_abandoned", {"sku": "X-1"})
    stand.publish([(event.event_id, event.routing_key, event.encode())])
    got = wait_for(lambda: receiver.events("/custom"), what="the custom event at the receiver")
    assert got[0]["type"] == "custom.event" and got[0]["data"]["name"] == "cart_abandoned"
    assert got[0]["data"]["data"] == {"sku": "X-1"} and receiver.at("/custom")[0].verified


def test_410_disables_the_endpoint(hooks):
    stand, client, account_id, _, _, receiver, _ = hooks
    hook = add_hook(client, receiver, "/gone", answers=[410])
    stand.publish([open_event(account_id)])
    got = wait_for(lambda: (h := client.ok("webhooks/get", id=hook["id"]))["enabled"] is False and h,
                   what="the endpoint disabled by 410")
    assert "410" in got["disabled_reason"]
    assert len(receiver.at("/gone")) == 1  # no retry after 410
    entries = client.ok("webhooks/log", webhook_id=hook["id"])
    assert [e["state"] for e in entries] == ["failed"]
    stand.publish([open_event(account_id)])  # a disabled endpoint takes no new messages
    other_hook = add_hook(client, receiver, "/after-gone")
    stand.publish([open_event(account_id)])
    wait_for(lambda: receiver.events("/after-gone"), what="a later event at another endpoint")
    assert len(client.ok("webhooks/log", webhook_id=hook["id"])) == 1
    client.ok("webhooks/delete", id=other_hook["id"])


def test_every_event_is_acknowledged_once_across_kill_9(hooks):
    stand, client, account_id, _, _, receiver, _ = hooks
    hook = add_hook(client, receiver, "/dedupe")
    receiver.delay = 0.02  # a receiver slow enough for the kill to land while requests are in flight
    try:
        events = [open_event(account_id, f"k{i}") for i in range(40)]
        expected = {webhooks.message_id(hook["id"], e[0]) for e in events}
        pid = stand.status("prochook")["pid"]
        stand.publish(events)
        wait_for(lambda: len(receiver.at("/dedupe")) >= 8, every=0.01, what="the first deliveries")
        os.kill(pid, signal.SIGKILL)
        assert len({d.msg_id for d in receiver.at("/dedupe")}) < 40, "the kill came too late to prove anything"
        wait_for(lambda: (s := stand.status("prochook"))["state"] == "RUNNING" and s["pid"] != pid,
                 timeout=60, what="akd to restart prochook")
        stand.publish(events[:10])  # a producer publishing again: the same event ids
        wait_for(lambda: expected <= set(receiver.processed), timeout=60, what="all 40 events acknowledged")
        ids = [d.msg_id for d in receiver.at("/dedupe")]
        assert set(ids) == expected  # one stable webhook-id per event, nothing else
        acked = [i for i in receiver.processed if i in expected]
        assert sorted(acked) == sorted(expected)  # each acknowledged exactly once
        # prochook records a delivery after the receiver's answer: the last may still be on its way
        entries = wait_for(lambda: (log := client.ok("webhooks/log", webhook_id=hook["id"], limit=1000)) and
                           all(e["state"] == "delivered" for e in log) and log, timeout=30,
                           what="every delivery recorded as delivered")
        assert len(entries) == 40
    finally:
        receiver.delay = 0.0


def test_private_and_loopback_addresses_are_refused_with_the_reason(hooks):
    _, client, _, _, _, receiver, _ = hooks
    status, body = client("webhooks/add", url="http://10.1.2.3/hook")
    assert status == 400
    assert body["error_text"].startswith("url: refused: 10.1.2.3 is a private address"), body
    status, body = client("webhooks/add", url="http://169.254.169.254/latest/meta-data")
    assert status == 400 and "link-local" in body["error_text"]
    status, body = client("webhooks/add", url="http://127.0.0.2:9/")  # only 127.0.0.1/32 is allowed
    assert status == 400 and "loopback" in body["error_text"]
    hook = client.ok("webhooks/add", url=receiver.base + "/x")
    status, body = client("webhooks/update", id=hook["id"], url="http://192.168.0.10/")
    assert status == 400 and "private" in body["error_text"]
    client.ok("webhooks/delete", id=hook["id"])


def test_intake_acknowledges_only_after_the_outbox_write(hooks):
    """The intake in this process, with prochook under akd stopped (it would compete for the
    queue): a write that fails leaves the batch unacknowledged, and the next intake writes it."""
    from altcraft.services.prochook import Intake

    stand, client, account_id, _, _, receiver, platform = hooks
    stand.stop("prochook")
    hook = add_hook(client, receiver, "/intake")
    outbox = platform.webhook_outbox

    class FailingOutbox:
        entry = outbox.entry

        def put(self, entries):
            raise ConnectionError("the document store went away")

    events = [open_event(account_id, f"i{i}") for i in range(5)]
    stand.publish(events)
    failed: list[BaseException] = []

    def run(intake: Intake, stop: threading.Event) -> None:
        try:
            intake.run(stop)
        except ConnectionError as exc:
            failed.append(exc)

    stop = threading.Event()
    first = threading.Thread(target=run, args=(Intake(stand.config, platform.webhooks, FailingOutbox(),
                                                      threading.Event()), stop))
    first.start()
    first.join(timeout=60)
    assert failed and not first.is_alive(), "the failing write did not stop the intake"
    second = threading.Thread(target=run, args=(Intake(stand.config, platform.webhooks, outbox, threading.Event()),
                                                stop))
    second.start()
    try:
        entries = wait_for(lambda: len(client.ok("webhooks/log", webhook_id=hook["id"])) == 5 and
                           client.ok("webhooks/log", webhook_id=hook["id"]), what="the 5 events in the outbox")
    finally:
        stop.set()
        second.join(timeout=30)
    assert {e["event_id"] for e in entries} == {e[0] for e in events}
    # retention: what is done goes, what is pending stays (prochook prunes after WEBHOOKS.KEEP_DAYS)
    platform.webhook_outbox.prune(timedelta(0))
    assert client.ok("webhooks/log", state="delivered") == []
    assert len(client.ok("webhooks/log", webhook_id=hook["id"], state="pending")) == 5


def test_outbox_on_an_injected_clock_lease_retries_and_last_failure(hooks):
    """The outbox alone (real document store, a clock the test moves): a claim is due again
    when its lease ends, a failure waits its scheduled delay, the last one fails the entry."""
    platform = hooks[-1]
    clock = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    outbox = webhooks.Outbox(platform.control, clock=lambda: clock[0])
    outbox.collection.delete_many({"state": "pending"})  # only this test's entry is due
    entry = outbox.entry(999_999, 999_999, str(uuid.uuid4()), "action.open", b"{}")
    assert outbox.put([entry]) == 1 and outbox.put([entry]) == 0  # the same pair: no second entry
    first = outbox.claim(lease_seconds=30)
    assert [c.id for c in first] == [entry["_id"]] and outbox.claim(30) == []
    clock[0] += timedelta(seconds=31)  # the sender died: after the lease it is due again
    second = outbox.claim(30)
    assert [c.id for c in second] == [entry["_id"]]
    assert outbox.record(first[0], 200) == "lost"  # the old claim records nothing
    total = 0.0
    claim = second[0]
    for failures in range(1, len(webhooks.RETRY_SCHEDULE) + 1):
        assert outbox.record(claim, 500, "HTTP 500") == "pending"
        due = outbox.collection.find_one({"_id": entry["_id"]})["next_at"]
        delay = (due - clock[0]).total_seconds()
        base = webhooks.RETRY_SCHEDULE[failures - 1]
        assert base * 0.9 - 0.001 <= delay <= base * 1.1 + 0.001, (failures, delay)
        total += delay
        clock[0] = due - timedelta(milliseconds=1)
        assert outbox.claim(30) == []  # not before its time
        clock[0] = due
        claim = outbox.claim(30)[0]
    assert 2.5 * 86400 < total < 3.5 * 86400
    assert outbox.record(claim, 503, "HTTP 503") == "failed"
    doc = outbox.collection.find_one({"_id": entry["_id"]})
    assert doc["attempts"] == 11 and [a["status"] for a in doc["log"]][-2:] == [500, 503]
    outbox.collection.delete_one({"_id": entry["_id"]})
