"""Events, bot filtering and the AMQP frames of the tracking publisher (no servers)."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import pika
import pika.frame
import pika.spec
import pytest

from altcraft.domain import botfilter, events
from altcraft.domain.events import BadEvent, Event
from altcraft.domain.tracking import Link
from altcraft.stores.amqp_publish import marshal_publish

LINK = Link("click", 3, 4, 5, 123456789012, "0123456789abcdef0123456789abcdef", 7,
            'https://shop.example/x?a=1&b=ü"q', issued=1_800_000_000)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def test_action_event_round_trip_and_json():
    event_id, routing_key, body = events.action(LINK, "click", ip="10.0.0.1", user_agent='UA "x" ü',
                                                is_bot=True, bot_reason="tool", now=1_800_000_100.25)
    assert routing_key == "action.click"
    data = json.loads(body)  # a valid JSON document, whatever the strings hold
    assert data["url"] == LINK.url and data["user_agent"] == 'UA "x" ü' and data["time"] == "2027-01-15T08:01:40.250Z"
    event = events.decode(body, routing_key)
    assert event.event_id == uuid.UUID(event_id) and event.event_id.version == 4
    assert (event.kind, event.account_id, event.db_id, event.resource_id, event.campaign_id, event.link_id) == \
        ("click", 3, 4, 5, 123456789012, 7)
    assert event.is_bot and event.bot_reason == "tool" and event.issued == 1_800_000_000
    assert event.time == datetime(2027, 1, 15, 8, 1, 40, 250000, tzinfo=timezone.utc)
    # opens carry no URL
    assert json.loads(events.action(LINK, "open", ip="", user_agent="")[2])["url"] == ""


def test_event_ids_are_unique_v4_uuids():
    ids = {events.new_event_id() for _ in range(50_000)}
    assert len(ids) == 50_000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in list(ids)[:100])


def test_iso_now_has_milliseconds_and_never_goes_back_a_second():
    assert events.iso_now(0.5) == "1970-01-01T00:00:00.500Z"
    assert events.iso_now(1795356660.9999999) == "2026-11-22T14:11:01.000Z"


def test_delivery_event_round_trip():
    """akmtad's encoder and procactions' decoder are one contract: what one writes the other reads."""
    facts = events.DeliveryFacts(message_id="m1@ak", email="a@b.example", account_id=1, sender_id=9,
                                 db_id=2, resource_id=3, campaign_id=4, launch=2, profile_id="ab" * 16)
    event_id, routing, body = events.delivery(facts, "bounced_hard", 1, ip="192.0.2.7",
                                              detail="550 5.1.1 user unknown", now=1_795_000_000.5)
    assert routing == "delivery.bounced_hard"
    assert event_id == events.delivery_event_id("m1@ak", "bounced_hard", 1)  # the same outcome, the same id
    event = events.decode(body, routing)
    assert (event.kind, event.sender_id, event.email, event.detail, event.ip) == (
        "bounced_hard", 9, "a@b.example", "550 5.1.1 user unknown", "192.0.2.7")
    assert (event.account_id, event.db_id, event.resource_id, event.campaign_id, event.profile_id) == (
        1, 2, 3, 4, "ab" * 16)
    assert (event.launch, event.message_id) == (2, "m1@ak")
    assert event.time.timestamp() == 1_795_000_000.5
    row = dict(zip(events.COLUMNS, events.row(event)))
    assert "email" not in row and row["kind"] == "bounced_hard" and row["is_bot"] == 0


def test_delivery_event_ids_differ_by_outcome_and_attempt():
    ids = {events.delivery_event_id("m1@ak", kind, attempt)
           for kind in ("deferred", "delivered") for attempt in (1, 2)}
    assert len(ids) == 4
    with pytest.raises(ValueError, match="kind"):
        events.delivery(events.DeliveryFacts("m", "a@b", 1, 1), "open", 1, ip="", detail="")


@pytest.mark.parametrize("body,routing_key,why", [
    (b"not json", None, "not JSON"),
    (b"[1]", None, "not a JSON object"),
    (b'{"kind": "explode"}', None, "kind"),
    (b'{"kind": "open", "event_id": "x"}', None, "event_id"),
    (json.dumps({"kind": "open", "event_id": str(uuid.uuid4()), "time": "2026-01-01T00:00:00Z"}).encode(),
     None, "account_id"),
    (json.dumps({"kind": "open", "event_id": str(uuid.uuid4()), "account_id": 1, "time": "yesterday"}).encode(),
     None, "time"),
    (json.dumps({"kind": "open", "event_id": str(uuid.uuid4()), "account_id": -1}).encode(), None, "account_id"),
    (json.dumps({"kind": "open", "event_id": str(uuid.uuid4()), "account_id": 2**32}).encode(), None, "account_id"),
    (json.dumps({"kind": "open", "event_id": str(uuid.uuid4()), "account_id": 1, "db_id": "7",
                 "time": "2026-01-01T00:00:00Z"}).encode(), None, "db_id"),
    (json.dumps({"kind": "open", "event_id": str(uuid.uuid4()), "account_id": 1, "link_id": 2**32,
                 "time": "2026-01-01T00:00:00Z"}).encode(), None, "link_id"),
    (json.dumps({"kind": "open", "event_id": str(uuid.uuid4()), "account_id": 1,
                 "time": "1960-01-01T00:00:00Z"}).encode(), None, "time"),
    (json.dumps({"kind": "open", "event_id": str(uuid.uuid4()), "account_id": 1,
                 "time": "2026-01-01T00:00:00Z"}).encode(), "action.click", "routing key"),
])
def test_bad_events_are_refused_with_a_reason(body, routing_key, why):
    with pytest.raises(BadEvent, match=why):
        events.decode(body, routing_key)


def test_classify_on_the_hot_path():
    now = 1_800_000_100.0
    issued = 1_800_000_000
    assert botfilter.classify("click", "GET", BROWSER, "10.0.0.1", issued, now) == ""
    assert botfilter.classify("open", "GET", BROWSER, "10.0.0.1", issued, now) == ""
    assert botfilter.classify("click", "HEAD", BROWSER, "10.0.0.1", issued, now) == "head"
    assert botfilter.classify("click", "GET", "", "10.0.0.1", issued, now) == "no-user-agent"
    assert botfilter.classify("open", "GET", "Mozilla/5.0", "10.0.0.1", issued, now) == "apple-mpp"
    assert botfilter.classify("open", "GET", BROWSER, "17.58.1.2", issued, now) == "apple-mpp"
    assert botfilter.classify("click", "GET", "Mozilla/5.0", "10.0.0.1", issued, now) == "bare-user-agent"
    assert botfilter.classify("click", "GET", "Barracuda Sentinel (EE)", "1.1.1.1", issued, now) == "scanner"
    assert botfilter.classify("click", "GET", "Mozilla/5.0 (compatible; bingbot/2.0)", "1.1.1.1", issued, now) == "crawler"
    assert botfilter.classify("click", "GET", "python-requests/2.32", "1.1.1.1", issued, now) == "tool"
    assert botfilter.classify("click", "GET", BROWSER.replace("Chrome", "HeadlessChrome"), "1.1.1.1",
                              issued, now) == "headless"
    assert botfilter.classify("open", "GET", "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                              "(via ggpht.com GoogleImageProxy)", "66.1.1.1", issued, now) == ""
    # a click a second after the link was signed: no person reads that fast
    assert botfilter.classify("click", "GET", BROWSER, "10.0.0.1", issued, issued + 1.0) == "click-after-signing"


def _event(kind, at, profile="p1", campaign=7):
    return Event(uuid.uuid4(), kind, at, 1, 1, 1, campaign, profile)


def test_fast_clicks_after_delivery_or_open_are_flagged():
    t0 = datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone.utc)
    delivered = _event("delivered", t0)
    scanner_click = _event("click", t0 + timedelta(seconds=1))
    human_click = _event("click", t0 + timedelta(seconds=30), profile="p2")
    opened = _event("open", t0 + timedelta(seconds=40), profile="p2")
    click_after_open = _event("click", t0 + timedelta(seconds=40, milliseconds=500), profile="p2")
    # the pixel loaded 50 ms after a click (same second): not a click after the open
    click_before_open = _event("click", t0 + timedelta(seconds=39, milliseconds=950), profile="p2")
    other_campaign = _event("click", t0 + timedelta(seconds=1), campaign=8)
    batch = [delivered, scanner_click, human_click, opened, click_after_open, click_before_open, other_campaign]
    asked = []

    def stored(clicks, since, until):
        asked.append((len(clicks), since, until))
        # p2 was delivered 29 s before its first click (from ClickHouse)
        return [(7, "p2", "delivered", t0 + timedelta(seconds=1), uuid.uuid4()),
                # a stored copy of this batch's open (a redelivered batch): not looked at twice
                (7, "p2", "open", t0 + timedelta(seconds=40), opened.event_id)]

    assert botfilter.flag_fast_clicks(batch, stored) == 2
    assert scanner_click.bot_reason == "click-after-delivery"
    assert click_after_open.bot_reason == "click-after-open"
    assert not human_click.is_bot and not other_campaign.is_bot and not opened.is_bot
    assert not click_before_open.is_bot
    assert asked[0][0] == 5 and asked[0][1] <= t0 - timedelta(seconds=1)


def _pika_frames(channel, exchange, routing_key, body, message_id, max_body):
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json", message_id=message_id)
    out = [pika.frame.Method(channel, pika.spec.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                                             mandatory=True)).marshal(),
           pika.frame.Header(channel, len(body), properties).marshal()]
    for start in range(0, len(body), max_body):
        out.append(pika.frame.Body(channel, body[start:start + max_body]).marshal())
    return b"".join(out)


@pytest.mark.parametrize("args", [
    (1, "altcraft.events", "action.click", b'{"a": 1}', str(uuid.uuid4()), 131064),
    (7, "x", "delivery.bounced_hard", b"z" * 1000, "m-1", 300),  # split into body frames
    (1, "altcraft.events", "action.open", b"", "m", 10),
])
def test_publish_frames_are_what_pika_writes(args):
    assert marshal_publish(*args) == _pika_frames(*args)
