"""Trigger matching, message-id derivation, the job wire format and automation events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from altcraft.domain import events, triggers
from altcraft.domain.errors import Invalid
from altcraft.services.procevent import TriggerCache, route

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def trigger(spec, **over):
    return {"id": 7, "account_id": 1, "db_id": 2, "active": True, "delay_seconds": 0,
            "trigger": triggers.parse_trigger(spec), **over}


def custom(name="order_paid", **over):
    return events.custom(over.pop("account_id", 1), over.pop("db_id", 2), "p1", name, over.pop("data", {"n": 1}))


def sub(status, resource_id=1, channel="email", account_id=1, db_id=2):
    return events.profile_change(f"profile_{status}", account_id, db_id, "p1", resource_id=resource_id,
                                 channel=channel)


def test_an_event_trigger_matches_its_name_only():
    t = trigger({"type": "event", "name": "order_paid"})
    assert triggers.matches(t, custom())
    assert not triggers.matches(t, custom("order_paid2"))
    assert not triggers.matches(t, sub("subscribed"))


def test_account_database_and_activity_must_match():
    t = trigger({"type": "event", "name": "order_paid"})
    assert not triggers.matches(t, custom(account_id=9))
    assert not triggers.matches(t, custom(db_id=9))
    assert not triggers.matches({**t, "active": False}, custom())


def test_subscription_triggers_match_status_resource_and_email_channel():
    anywhere = trigger({"type": "subscription", "status": "subscribed"})
    one = trigger({"type": "subscription", "status": "unsubscribed", "resource_id": 3})
    assert triggers.matches(anywhere, sub("subscribed", resource_id=5))
    assert not triggers.matches(anywhere, sub("unsubscribed"))
    assert not triggers.matches(anywhere, sub("subscribed", channel="sms"))
    assert triggers.matches(one, sub("unsubscribed", resource_id=3))
    assert not triggers.matches(one, sub("unsubscribed", resource_id=4))


def test_api_triggers_are_never_set_off_by_events():
    assert not triggers.matches(trigger({"type": "api"}), custom())
    assert not triggers.matches(trigger(None), sub("subscribed"))


def test_a_tracking_unsubscribe_reads_as_a_subscription_change():
    from altcraft.domain.tracking import Link
    _, key, body = events.action(Link("unsubscribe", 1, 2, 3, 44, "p1", 0, "", 0), "unsubscribe",
                                 ip="1.2.3.4", user_agent="x")
    event = events.decode_automation(body, key)
    assert (event.kind, event.resource_id, event.profile_id) == ("profile_unsubscribed", 3, "p1")
    assert triggers.matches(trigger({"type": "subscription", "status": "unsubscribed", "resource_id": 3}), event)


def test_message_ids_are_derived_from_trigger_and_key_or_event():
    t = {"id": 7, "uid": "u1"}
    a = triggers.message_id(t, idempotency_key="order-1")
    assert a == triggers.message_id(dict(t), idempotency_key="order-1")
    assert a != triggers.message_id({**t, "id": 8}, idempotency_key="order-1")
    assert a != triggers.message_id({**t, "uid": "u2"}, idempotency_key="order-1")  # a rebuilt platform's 7
    assert a != triggers.message_id(t, idempotency_key="order-2")
    assert a != triggers.message_id(t, event_id="order-1")  # separate namespaces
    assert a.startswith("trg7.") and a.replace(".", "").isalnum()
    with pytest.raises(ValueError):
        triggers.message_id(t)


def test_route_makes_one_send_per_match_due_after_the_delay_and_repeats_alike():
    event = custom(data={"order": "A-1"})
    active = [trigger({"type": "event", "name": "order_paid"}, delay_seconds=60),
              trigger({"type": "event", "name": "other"}, id=8),
              trigger({"type": "event", "name": "order_paid"}, id=9)]
    sends = route(event, active)
    assert [s["trigger_id"] for s in sends] == [7, 9]
    assert sends[0]["due_at"] == events.parse_time(event.time) + timedelta(seconds=60)
    assert sends[0]["data"] == {"order": "A-1"}
    assert [s["_id"] for s in route(event, active)] == [s["_id"] for s in sends]  # redelivered: same ids


def test_jobs_round_trip_and_bad_ones_are_refused():
    send = triggers.job(trigger(None), "p1", {"x": [1, "é"]}, idempotency_key="k", at=T0)
    assert triggers.decode_job(triggers.encode_job(send)) == send
    for bad in (b"{", b"[]", json.dumps({**json.loads(triggers.encode_job(send)), "trigger_id": "7"}).encode()):
        with pytest.raises(ValueError):
            triggers.decode_job(bad)


def test_the_answer_holds_only_what_never_changes():
    send = triggers.job(trigger(None), "p1", {}, idempotency_key="k", at=T0)
    assert triggers.answer({**send, "state": "sent", "attempts": 3}) == triggers.answer(send)


def test_custom_events_encode_decode_and_check_their_input():
    event = custom(data={"sum": 10.5, "items": ["a"]})
    assert event.routing_key == "custom.event"
    assert events.decode_automation(event.encode(), "custom.event") == event
    with pytest.raises(events.BadEvent, match="kind does not match"):
        events.decode_automation(event.encode(), "profile.created")
    for name in ("", "has space", "x" * 65, 5):
        with pytest.raises(events.BadEvent, match="name"):
            events.custom(1, 2, "p1", name)
    with pytest.raises(events.BadEvent, match="data"):
        events.custom(1, 2, "p1", "big", {"x": "y" * events.MAX_DATA_BYTES})
    created = events.profile_change("profile_created", 1, 2, "p1")
    assert created.routing_key == "profile.created"
    assert events.decode_automation(created.encode(), "profile.created") == created


def test_trigger_specs_are_checked():
    assert triggers.parse_trigger({"type": "subscription", "status": "subscribed"})["resource_id"] is None
    for bad, where in (({"type": "sms"}, "trigger"), ({"type": "event"}, "trigger.name"),
                       ({"type": "subscription", "status": "maybe"}, "trigger.status"),
                       ({"type": "api", "when": 1}, "trigger.when")):
        with pytest.raises(Invalid) as caught:
            triggers.parse_trigger(bad)
        assert caught.value.field == where


def test_the_trigger_cache_reads_again_after_its_time():
    loads, now = [], [0.0]
    cache = TriggerCache(lambda a: loads.append(a) or [a], ttl=5, clock=lambda: now[0])
    cache.active(1), cache.active(1)
    now[0] = 4.9
    cache.active(1)
    assert loads == [1]
    now[0] = 5.0
    assert cache.active(1) == [1] and loads == [1, 1]


def test_the_trigger_cache_reads_again_when_the_stamp_changes():
    loads = []
    cache = TriggerCache(lambda a: loads.append(a) or [len(loads)], ttl=60, clock=lambda: 0.0)
    assert cache.active(7, stamp=3) == [1]
    assert cache.active(7, stamp=3) == [1] and loads == [7]
    assert cache.active(7, stamp=4) == [2] and loads == [7, 7]
    assert cache.active(8, stamp=4) == [3]  # accounts are kept apart
