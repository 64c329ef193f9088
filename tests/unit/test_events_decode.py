"""events.decode: the msgspec fast path and the careful decoder (_decode_checked) give the
same Event for every message both accept; what the fast path refuses is accepted or named
by the careful one exactly as before; the producers' own messages take the fast path."""

import json
import uuid
from datetime import timezone

import pytest

from altcraft.domain import events
from altcraft.domain.events import BadEvent
from altcraft.domain.tracking import Link

EVENT_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
CLICK = {"event_id": EVENT_ID, "kind": "click", "time": "2026-11-22T14:11:01.250Z", "account_id": 3, "db_id": 4,
         "resource_id": 5, "campaign_id": 123456789012, "profile_id": "ab" * 16, "channel": "email", "link_id": 7,
         "url": "https://shop.example/x?a=1", "ip": "10.0.0.1", "user_agent": "Mozilla/5.0 (X11)", "is_bot": False,
         "bot_reason": "", "issued": 1_800_000_000}


def body(**changes) -> bytes:
    data = {**CLICK, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not _GONE}).encode()


_GONE = object()

VARIANTS: list[tuple[str, bytes, str | None]] = [
    ("as trkaction writes it", body(), "action.click"),
    ("no routing key", body(), None),
    ("routing key of another kind", body(), "action.open"),
    ("routing key of an automation event", body(kind="custom"), "custom.event"),
    ("unknown kind", body(kind="explode"), None),
    ("no kind", body(kind=_GONE), None),
    ("kind not a string", body(kind=5), None),
    ("nulls take the defaults", body(profile_id=None, db_id=None, is_bot=None, detail=None, url=None), None),
    ("channel null", body(channel=None), None),
    ("channel empty", body(channel=""), None),
    ("is_bot as a number", body(is_bot=1), None),
    ("is_bot as a string", body(is_bot="no"), None),
    ("an integer as a float", body(db_id=7.0), None),
    ("an integer in exponent form", body(campaign_id=1e3), None),
    ("an integer as a bool", body(db_id=True), None),
    ("an integer as a string", body(db_id="7"), None),
    ("a negative integer", body(link_id=-1), None),
    ("UInt32 overflow", body(link_id=2**32), None),
    ("UInt64 at its limit", body(campaign_id=2**64 - 1), None),
    ("UInt64 overflow", body(campaign_id=2**64), None),
    ("account 0", body(account_id=0), None),
    ("no account", body(account_id=_GONE), None),
    ("a falsy non-string text", body(url=0), None),
    ("false as a text", body(user_agent=False), None),
    ("an empty list as a text", body(profile_id=[]), None),
    ("a number as a text", body(url=5), None),
    ("an object as a text", body(url={"a": 1}), None),
    ("a long URL is cut", body(url="u" * 3000), None),
    ("a URL of exactly the limit", body(url="u" * 2048), None),
    ("a long ip is cut", body(ip="1" * 100), None),
    ("a long bot reason is cut", body(bot_reason="r" * 65), None),
    ("a long detail is cut", body(detail="d" * 3000), None),
    ("a detail as an object", body(detail={"code": 550, "text": "no"}), None),
    ("a detail as a number", body(detail=550), None),
    ("time with an offset", body(time="2026-11-22T17:11:01.250+03:00"), None),
    ("time +00:00", body(time="2026-11-22T14:11:01+00:00"), None),
    ("time without a zone", body(time="2026-11-22T14:11:01"), None),
    ("time with a space", body(time="2026-11-22 14:11:01Z"), None),
    ("time lower case", body(time="2026-11-22t14:11:01z"), None),
    ("time with seven fraction digits", body(time="2026-11-22T14:11:01.1234567Z"), None),
    ("time with one fraction digit", body(time="2026-11-22T14:11:01.5Z"), None),
    ("time with nine fraction digits, rounded up", body(time="2026-11-22T14:11:01.999999951Z"), None),
    ("time with nine fraction digits, rounded down", body(time="2026-11-22T14:11:01.123456449+03:00"), None),
    ("time with a comma", body(time="2026-11-22T14:11:01,5Z"), None),
    ("time offset without a colon", body(time="2026-11-22T14:11:01+0300"), None),
    ("time offset in hours", body(time="2026-11-22T14:11:01+03"), None),
    ("time without seconds", body(time="2026-11-22T14:11Z"), None),
    ("time with a dot and no fraction", body(time="2026-11-22T14:11:01.Z"), None),
    ("time with an offset of seconds", body(time="2026-11-22T14:11:01+03:00:30"), None),
    ("time with -00:00", body(time="2026-11-22T14:11:01-00:00"), None),
    ("time at the very end", body(time="9999-12-31T23:59:59.9999999Z"), None),
    ("time in lower case with an offset", body(time="2026-11-22t14:11:01+01:00"), None),
    ("time in the basic format", body(time="20261122T141101Z"), None),
    ("time as a date", body(time="2026-11-22"), None),
    ("time at 24:00", body(time="2026-11-22T24:00:00Z"), None),
    ("a leap second", body(time="2016-12-31T23:59:60Z"), None),
    ("time before 1970", body(time="1960-01-01T00:00:00Z"), None),
    ("time at the epoch's day", body(time="1970-01-02T00:00:00Z"), None),
    ("time after 2105", body(time="2106-01-01T00:00:00Z"), None),
    ("time as a word", body(time="yesterday"), None),
    ("time as a number", body(time=1795356661), None),
    ("no time", body(time=_GONE), None),
    ("event id in upper case", body(event_id=EVENT_ID.upper()), None),
    ("event id without dashes", body(event_id=EVENT_ID.replace("-", "")), None),
    ("event id in braces", body(event_id="{" + EVENT_ID + "}"), None),
    ("event id as a URN", body(event_id="urn:uuid:" + EVENT_ID), None),
    ("event id not a UUID", body(event_id="x"), None),
    ("event id as a number", body(event_id=5), None),
    ("no event id", body(event_id=_GONE), None),
    ("unknown keys", body(extra={"a": [1, 2]}, future="x"), None),
    ("a key named like a method", body(flag="x", routing_key="y"), None),
    ("NaN under an unknown key", body().replace(b'"kind"', b'"score": NaN, "kind"'), None),
    ("a key twice", body().replace(b'"kind": "click"', b'"kind": "open", "kind": "click"'), None),
    ("a key twice, last wins", body().replace(b'"kind": "click"', b'"kind": "click", "kind": "open"'), None),
    ("a lone surrogate", body(user_agent="\ud800x"), None),
    ("non-ASCII text", body(user_agent="Mozilla ü ✓"), None),
    ("invalid UTF-8", body().replace(b"Mozilla", b"Moz\xffilla"), None),
    ("spaces around", b"  " + body() + b"\n", None),
    ("a byte-order mark", b"\xef\xbb\xbf" + body(), None),
    ("a list", b"[1]", None),
    ("a string", b'"x"', None),
    ("not JSON", b"{not json", None),
    ("empty", b"", None),
    ("trailing data", body() + b"{}", None),
]


def outcome(decoder, raw: bytes, routing: str | None):
    try:
        event = decoder(raw, routing)
    except BadEvent as exc:
        return f"BadEvent: {exc}"
    assert event.time.tzinfo is timezone.utc
    return event


@pytest.mark.parametrize("raw,routing", [pytest.param(raw, routing, id=name) for name, raw, routing in VARIANTS])
def test_fast_and_careful_decoders_agree(raw, routing):
    assert outcome(events.decode, raw, routing) == outcome(events._decode_checked, raw, routing)


def test_the_producers_messages_take_the_fast_path(monkeypatch):
    def careful(body, routing=None):
        raise AssertionError(f"the careful decoder was asked for {body[:60]!r}")

    monkeypatch.setattr(events, "_decode_checked", careful)
    link = Link("click", 3, 4, 5, 123456789012, "ab" * 16, 7, "https://shop.example/x", issued=1_800_000_000)
    for kind in events.ACTION_KINDS:
        _, routing, raw = events.action(link, kind, ip="10.0.0.1", user_agent="Mozilla/5.0 (X11)",
                                        is_bot=kind == "open", bot_reason="apple-mpp" if kind == "open" else "")
        assert events.decode(raw, routing).kind == kind
    facts = events.DeliveryFacts(message_id="m1@ak", email="a@b.example", account_id=1, sender_id=9, db_id=2,
                                 resource_id=3, campaign_id=4, launch=2, profile_id="ab" * 16)
    for kind in events.DELIVERY_KINDS:
        _, routing, raw = events.delivery(facts, kind, 1, ip="192.0.2.7", detail="250 2.0.0 ok")
        event = events.decode(raw, routing)
        assert (event.kind, event.email, event.message_id, event.launch) == (kind, "a@b.example", "m1@ak", 2)


def test_columns_are_the_rows_transposed():
    raws = [events.action(Link("click", 3, 4, 5, 6, f"{i:032x}", i, f"https://x.example/{i}"), "click",
                          ip="10.0.0.1", user_agent="UA", is_bot=i % 2 == 1, bot_reason="tool" if i % 2 else "",
                          now=1_800_000_000.5 + i) for i in range(3)]
    batch = [events.decode(raw, routing) for _, routing, raw in raws]
    table = events.columns(batch)
    assert len(table) == len(events.COLUMNS)
    for i, event in enumerate(batch):
        expected = dict(zip(events.COLUMNS, events.row(event)))
        expected["event_time"] = 1_800_000_000 + i  # unix seconds, as the driver would write the datetime
        assert {name: column[i] for name, column in zip(events.COLUMNS, table)} == expected
    assert events.columns([]) == [[] for _ in events.COLUMNS]


def test_a_new_event_id_parses_on_the_fast_path():
    raw = body(event_id=events.new_event_id())
    assert events.decode(raw).event_id == uuid.UUID(json.loads(raw)["event_id"])


@pytest.mark.parametrize("key", ["user_agent", "url", "detail", "profile_id"])
def test_a_lone_surrogate_is_refused_not_left_to_fail_the_insert(key):
    """JSON can spell \\ud800; no UTF-8 column holds it, and the batch's INSERT would fail at
    every redelivery: the message is dead-lettered instead."""
    with pytest.raises(BadEvent, match=f"{key}: not valid Unicode"):
        events.decode(body(**{key: "a\ud800b"}))
