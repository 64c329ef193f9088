"""procactions under akd against the real broker, ClickHouse, document store and SSDB
stand-in: exactly-once across kill -9, profile effects, dead-lettering, bot timing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from altcraft.domain import events as wire
from altcraft.domain.reports import hour_key
from altcraft.domain.stoplist import StopList
from altcraft.domain.tracking import Link
from altcraft.services import procactions
from altcraft.stores import broker, kv
from altcraft.wiring import Platform
from tests.lib.stand import campaign_id
from tests.lib.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def event(kind: str, account_id: int, campaign: int, profile: str, at: datetime, *, db_id: int = 0,
          resource_id: int = 1, link_id: int = 0, url: str = "", channel: str = "email", sender_id: int = 0,
          email: str = "", detail: str = "") -> tuple[str, str, bytes]:
    """(event_id, routing key, body), made by the encoder trkaction or akmtad uses for the kind."""
    if kind in wire.ACTION_KINDS:
        return wire.action(Link(kind, account_id, db_id, resource_id, campaign, profile, link_id, url), kind,
                           ip="", user_agent="", now=at.timestamp(), channel=channel)
    facts = wire.DeliveryFacts(message_id=f"{uuid.uuid4()}@test", email=email, account_id=account_id,
                               sender_id=sender_id, db_id=db_id, resource_id=resource_id, campaign_id=campaign,
                               profile_id=profile)
    return wire.delivery(facts, kind, 1, ip="", detail=detail, now=at.timestamp())


def kind_of(encoded: tuple[str, str, bytes]) -> str:
    return encoded[1].split(".", 1)[1]


@pytest.mark.timeout(600)
def test_kill_9_while_100k_events_flow_keeps_each_event_exactly_once(stand):
    campaign = campaign_id()
    account_id = 7_000_000 + campaign % 1_000_000  # an account no other test writes
    now = datetime.now(timezone.utc)
    kinds = ("delivered", "open", "click", "deferred", "bounced_soft", "open", "delivered")
    events = [event(kinds[i % len(kinds)], account_id, campaign, f"{i % 20_000:032x}", now - timedelta(seconds=i % 600),
                    link_id=i % 3, url="https://shop.example/" if kinds[i % len(kinds)] == "click" else "")
              for i in range(100_000)]
    assert len({e[0] for e in events}) == 100_000

    stand.start("procactions")
    publisher = threading.Thread(target=stand.publish, args=(events,))
    publisher.start()
    where = "account_id = %(a)s AND campaign_id = %(c)s"
    params = {"a": account_id, "c": campaign}
    kills = []
    for threshold in (20_000, 55_000):  # twice, each right after a batch reached ClickHouse
        pid = stand.status("procactions")["pid"]
        wait_for(lambda: stand.rows(where, params) >= threshold, timeout=120, every=0.01,
                 what=f"procactions to have written {threshold:,} events")
        os.kill(pid, signal.SIGKILL)
        kills.append((stand.rows(where, params), stand.rows(where, params, "uniqExact(event_id)")))
        assert kills[-1][1] < 100_000, "the kill came too late to prove anything"
        wait_for(lambda: (s := stand.status("procactions"))["state"] == "RUNNING" and s["pid"] != pid,
                 timeout=60, what="akd to restart procactions")
    assert stand.status("procactions")["restarts"] == 2
    publisher.join(timeout=300)
    assert not publisher.is_alive()
    # a producer that restarts publishes again what it is not sure of (akmtad does): the same
    # event ids arrive a second time, as a redelivery would bring them
    stand.publish(events[:5_000])
    wait_for(lambda: stand.rows(where, params, "uniqExact(event_id)") == 100_000, timeout=300,
             what="all 100,000 events in ClickHouse")
    wait_for(lambda: stand.depth("events.actions") == 0 and stand.depth("events.delivery") == 0,
             timeout=120, what="the queues to drain")
    time.sleep(1.5)
    unique = stand.rows(where, params, "uniqExact(event_id)")
    final = stand.query("SELECT count() FROM {events} FINAL WHERE " + where, params)[0][0]
    raw = stand.rows(where, params)
    print(f"\nkilled twice at (rows, unique events) {kills}; at the end: rows not yet merged {raw:,}, "
          f"uniqExact {unique:,}, FINAL {final:,}")
    assert unique == 100_000 and final == 100_000
    kinds_in_ch = dict(stand.query("SELECT kind, uniqExact(event_id) FROM {events} WHERE " + where +
                                   " GROUP BY kind", params))
    expected = {}
    for e in events:
        expected[kind_of(e)] = expected.get(kind_of(e), 0) + 1
    assert kinds_in_ch == expected


def test_unsubscribes_hard_bounces_and_their_order(stand):
    platform = Platform(stand.config)
    account = platform.accounts.save(name=f"proc{campaign_id()}")
    database = platform.databases(account["id"]).add("customers", "email")
    profiles = platform.profiles(account["id"], database.id)
    subscribed = [{"resource_id": 1, "channel": "email", "status": "subscribed"}]
    people = [profiles.add({"email": f"p{i}.{campaign_id()}@example.com"}, subscribed) for i in range(4)]
    ids = [p["id"] for p in people]
    campaign = campaign_id()
    stoplist = StopList(kv.ssdb(stand.config, "hbsupp"))
    # after the profiles' subscriptions were set (an older event would rightly be ignored),
    # and every event of this test within one hour
    now = datetime.now(timezone.utc) + timedelta(seconds=1)
    if (now + timedelta(seconds=10)).hour != now.hour:
        time.sleep(15)
        now = datetime.now(timezone.utc)
    a, d = account["id"], database.id

    def status(profile_id: str) -> str:
        return profiles.get(profile_id=profile_id)["subscriptions"][0]["status"]

    stand.start("procactions")
    stand.publish([
        event("unsubscribe", a, campaign, ids[0], now, db_id=d, channel="email"),
        event("bounced_hard", a, campaign, ids[1], now, db_id=d, sender_id=3, email=people[1]["data"]["email"],
              detail="550 5.1.1 user unknown"),
        # out of order: the resubscribe (later) arrives before the unsubscribe (earlier)
        event("subscribe", a, campaign, ids[2], now + timedelta(seconds=5), db_id=d),
        event("bounced_soft", a, campaign, ids[3], now, db_id=d, email=people[3]["data"]["email"]),
        # a profile database that does not exist: written to ClickHouse, no effect, no error
        event("bounced_hard", a, campaign, "f" * 32, now, db_id=9999, email="nobody@example.com"),
    ])
    wait_for(lambda: status(ids[0]) == "unsubscribed" and status(ids[1]) == "hard_bounced",
             what="the unsubscribe and the hard bounce on the profiles")
    stand.publish([event("unsubscribe", a, campaign, ids[2], now, db_id=d)])
    where = "account_id = %(a)s AND campaign_id = %(c)s"
    wait_for(lambda: stand.rows(where, {"a": a, "c": campaign}) == 6, what="six events in ClickHouse")
    assert status(ids[2]) == "subscribed"  # the older unsubscribe did not win
    assert status(ids[3]) == "subscribed"  # a soft bounce changes nothing
    assert stoplist.contains(people[1]["data"]["email"])
    assert not stoplist.contains(people[3]["data"]["email"]) and not stoplist.contains("nobody@example.com")

    # hourly statistics in SSDB (stats): recomputed from ClickHouse for the touched hour
    stats = kv.ssdb(stand.config, "stats").client
    hour = int(now.timestamp()) // 3600 * 3600
    counts = wait_for(lambda: (h := stats.hgetall(hour_key(a, hour))) and h.get(b"unsubscribe") == b"2" and h,
                      what="hourly statistics")
    assert counts[b"bounced_hard"] == b"2" and counts[b"subscribe"] == b"1" and counts[b"bounced_soft"] == b"1"
    platform.close()


def test_a_bad_message_is_dead_lettered_not_lost_and_not_blocking(stand):
    campaign = campaign_id()
    account_id = 8_000_000 + campaign % 1_000_000
    now = datetime.now(timezone.utc)
    stand.start("procactions")
    dead_before = stand.depth("events.dead")
    with broker.Broker(stand.config, app="altcraft-test") as mq:
        for body in (b"{not json", json.dumps({"kind": "open", "event_id": "not-a-uuid"}).encode()):
            mq.publish(broker.Message("altcraft.events", "action.open", body))
    stand.publish([event("open", account_id, campaign, "a" * 32, now)])
    wait_for(lambda: stand.rows("account_id = %(a)s AND campaign_id = %(c)s", {"a": account_id, "c": campaign}) == 1,
             what="the good event behind the bad ones")
    wait_for(lambda: stand.depth("events.dead") >= dead_before + 2, what="two dead-lettered messages")


def test_clicks_right_after_delivery_or_open_are_flagged(stand):
    campaign = campaign_id()
    account_id = 9_000_000 + campaign % 1_000_000
    t0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    stand.start("procactions")
    # earlier batch: deliveries and an open, stored in ClickHouse before the clicks arrive
    stand.publish([event("delivered", account_id, campaign, "1" * 32, t0),
                   event("delivered", account_id, campaign, "2" * 32, t0),
                   event("open", account_id, campaign, "2" * 32, t0 + timedelta(seconds=60))])
    wait_for(lambda: stand.rows("account_id = %(a)s AND campaign_id = %(c)s", {"a": account_id, "c": campaign}) == 3,
             what="the deliveries and the open")
    stand.publish([
        event("click", account_id, campaign, "1" * 32, t0 + timedelta(milliseconds=900), link_id=1),  # scanner
        event("click", account_id, campaign, "2" * 32, t0 + timedelta(seconds=30), link_id=1),  # a person
        event("click", account_id, campaign, "2" * 32, t0 + timedelta(seconds=60, milliseconds=300), link_id=2),
    ])
    where = "account_id = %(a)s AND campaign_id = %(c)s AND kind = 'click'"
    wait_for(lambda: stand.rows(where, {"a": account_id, "c": campaign}) == 3, what="the clicks")
    rows = stand.query("SELECT profile_id, link_id, is_bot, bot_reason FROM {events} WHERE " + where +
                       " ORDER BY event_time", {"a": account_id, "c": campaign})
    assert rows == [("1" * 32, 1, 1, "click-after-delivery"), ("2" * 32, 1, 0, ""),
                    ("2" * 32, 2, 1, "click-after-open")]


def test_a_burst_ends_in_clickhouse_without_waiting_for_the_timer(stand):
    """procactions' Consumer in-process, its flush timer at an hour and a prefetch of 20
    (batches of 10): a trickle of 3 events is not written alone; a backlog of 21 behind it
    is written whole, its last batch (smaller than 10 as a rule) by the end-of-burst rule."""
    campaign = campaign_id()
    account_id = 6_000_000 + campaign % 1_000_000
    now = datetime.now(timezone.utc)
    made = [event("open", account_id, campaign, f"{i:032x}", now) for i in range(24)]
    consumer = procactions.Consumer(stand.config, procactions.make_writer(stand.config), prefetch=20,
                                    flush_seconds=3600)
    sizes: list[int] = []
    write = consumer.writer.write
    consumer.writer.write = lambda batch: (sizes.append(len(batch)), write(batch))[1]
    stop = threading.Event()
    worker = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    worker.start()
    try:
        stand.publish(made[:3])
        wait_for(lambda: consumer.gathered() == 3, what="the trickle gathered")
        stand.publish(made[3:])
        where = "account_id = %(a)s AND campaign_id = %(c)s"
        wait_for(lambda: stand.rows(where, {"a": account_id, "c": campaign}) == 24, what="all 24 events")
        wait_for(lambda: consumer.acked_tag == 24, what="every delivery acknowledged")
    finally:
        stop.set()
        worker.join(timeout=30)
    assert sizes[0] > 3 and sum(sizes) == 24, sizes
    assert stand.depth("events.actions") == 0
