"""Events: what tracking and the MTA report, as they travel through RabbitMQ into ClickHouse.

Every event carries an `event_id` (a UUID made once, where the event happened) so that a
message delivered twice by the broker is one event in ClickHouse (ReplacingMergeTree on
event_id, and reports count uniqExact(event_id)).

Routing keys on the `altcraft.events` topic exchange:
  action.open | action.click | action.unsubscribe | action.subscribe   (tracking)
  delivery.delivered | .deferred | .bounced_hard | .bounced_soft | .dropped   (akmtad)

Wire format: one JSON object per message, UTF-8. `time` is ISO 8601 in UTC with
milliseconds. Unknown keys are ignored so that producers can add fields first.

procactions decodes every event (`decode`) on the thread that reads the broker, so `Event` is
a msgspec Struct: a well-formed message is parsed, typed and range-checked in one call of C
code; anything the fast path refuses is decoded again by `_decode_checked`, which accepts
what the wire format allows and names the first problem of what it does not.
"""

from __future__ import annotations

import json
import operator
import random
import re
import time as _time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import msgspec

from altcraft.domain.tracking import Link

ACTION_KINDS = ("open", "click", "unsubscribe", "subscribe")
DELIVERY_KINDS = ("delivered", "deferred", "bounced_hard", "bounced_soft", "dropped")
KINDS = ACTION_KINDS + DELIVERY_KINDS
ROUTING_PREFIX = {**{k: "action" for k in ACTION_KINDS}, **{k: "delivery" for k in DELIVERY_KINDS}}
_ROUTING_KEYS = {k: f"{p}.{k}" for k, p in ROUTING_PREFIX.items()}
_dumps = json.dumps  # ensure_ascii: bodies are plain ASCII

_MAX_TEXT = 2048  # user agents, URLs and details are cut to this many characters


class BadEvent(ValueError):
    """A message that is not a valid event; it goes to the dead-letter queue, never dropped."""


_U32, _U64 = 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF
# What the fast path of `decode` accepts without a second look: the ClickHouse column's range,
# texts no longer than they are stored (a longer one is cut by _decode_checked)
_UInt32 = Annotated[int, msgspec.Meta(ge=0, le=_U32)]
_UInt64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # msgspec's bounds are int64: 2^63.. goes the careful way
_Text = Annotated[str, msgspec.Meta(max_length=_MAX_TEXT)]
_Short = Annotated[str, msgspec.Meta(max_length=64)]


class Event(msgspec.Struct, gc=False):
    """One tracking or delivery event. gc=False: it holds no containers, so no cycles."""
    event_id: uuid.UUID
    kind: str
    time: datetime  # aware, UTC
    account_id: _UInt32
    db_id: _UInt32 = 0
    resource_id: _UInt64 = 0
    campaign_id: _UInt64 = 0
    profile_id: _Text = ""
    channel: _Text = "email"
    link_id: _UInt32 = 0
    url: _Text = ""
    ip: _Short = ""
    user_agent: _Text = ""
    sender_id: _UInt64 = 0
    email: _Text = ""  # delivery events only; never written to ClickHouse
    detail: _Text = ""
    is_bot: bool = False
    bot_reason: _Short = ""
    issued: _UInt64 = 0  # when the tracking token was signed (unix seconds), for bot timing
    launch: _UInt32 = 0  # delivery events: the campaign's launch
    message_id: _Text = ""  # delivery events: the Message-ID the MTA delivered

    @property
    def routing_key(self) -> str:
        return routing_key(self.kind)

    def flag(self, reason: str) -> None:
        if not self.is_bot:
            self.is_bot, self.bot_reason = True, reason


def routing_key(kind: str) -> str:
    return _ROUTING_KEYS[kind]


_EPOCH = datetime(1970, 1, 2, tzinfo=timezone.utc)
_DATETIME_END = datetime(2105, 12, 31, tzinfo=timezone.utc)
_SECOND: tuple[int, str] = (0, "")  # the formatted current second, shared by all threads


def iso_now(now: float | None = None) -> str:
    """UTC ISO 8601 with milliseconds, cheaply (the tracking hot path calls it per request)."""
    global _SECOND
    millis = int((_time.time() if now is None else now) * 1000)
    second = millis // 1000
    cached = _SECOND  # one read: a tuple swapped whole by whoever formats a new second
    if cached[0] != second:
        cached = _SECOND = (second, _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(second)))
    return f"{cached[1]}.{millis % 1000:03d}Z"


def new_event_id() -> str:
    """A random (version 4) UUID without a system call: uuid4() reads os.urandom, which
    releases the GIL and, next to a busy thread, costs tens of microseconds per request.
    `random` is reseeded from the OS in every forked child; ids need uniqueness (122 random
    bits), not secrecy."""
    bits = random.getrandbits(128) & ~(0xF000 << 64) | (0x4000 << 64)
    bits = bits & ~(0xC000 << 48) | (0x8000 << 48)
    return str(uuid.UUID(int=bits))


def action(link: Link, kind: str, *, ip: str, user_agent: str, is_bot: bool = False,
           bot_reason: str = "", now: float | None = None, channel: str = "email") -> tuple[str, str, bytes]:
    """A tracking event made from a verified token: (event_id, routing key, JSON body).

    The body is formatted directly (json.dumps only for the free-text values): this runs for
    every click and open, and is twice as fast as dumping a dict.
    """
    event_id = new_event_id()
    url = link.url[:_MAX_TEXT] if kind == "click" else ""
    body = (
        f'{{"event_id":"{event_id}","kind":{_dumps(kind)},"time":"{iso_now(now)}",'
        f'"account_id":{link.account_id:d},"db_id":{link.db_id:d},"resource_id":{link.resource_id:d},'
        f'"campaign_id":{link.campaign_id:d},"profile_id":{_dumps(link.profile_id)},"channel":{_dumps(channel)},'
        f'"link_id":{link.link_id:d},"url":{_dumps(url)},"ip":{_dumps(ip)},'
        f'"user_agent":{_dumps(user_agent[:_MAX_TEXT])},"is_bot":{"true" if is_bot else "false"},'
        f'"bot_reason":{_dumps(bot_reason)},"issued":{link.issued:d}}}'
    )
    return event_id, routing_key(kind), body.encode("ascii")


_DELIVERY_NS = uuid.UUID("7b0f6a8e-58f4-4a8e-9a53-2d3c9b1e0a11")


def delivery_event_id(message_id: str, kind: str, attempt: int) -> str:
    """Derived, not random: an outcome re-published after a crash is the same event."""
    return str(uuid.uuid5(_DELIVERY_NS, f"{message_id}:{kind}:{attempt}"))


@dataclass(frozen=True, slots=True)
class DeliveryFacts:
    """What a delivery event says about its message (the MTA envelope's facts)."""
    message_id: str
    email: str
    account_id: int
    sender_id: int
    db_id: int = 0
    resource_id: int = 0
    campaign_id: int = 0
    launch: int = 0
    profile_id: str = ""


def delivery(facts: DeliveryFacts, kind: str, attempt: int, *, ip: str, detail: str,
             now: float | None = None) -> tuple[str, str, bytes]:
    """An MTA outcome (delivered, deferred, bounced_hard, bounced_soft, dropped) for attempt
    number `attempt`: (event_id, routing key, JSON body). `decode` reads it back."""
    if kind not in DELIVERY_KINDS:
        raise ValueError(f"kind: {kind!r} is not a delivery kind")
    event_id = delivery_event_id(facts.message_id, kind, attempt)
    body = {
        "event_id": event_id, "kind": kind, "time": iso_now(now), "account_id": facts.account_id,
        "db_id": facts.db_id, "resource_id": facts.resource_id, "campaign_id": facts.campaign_id,
        "launch": facts.launch, "profile_id": facts.profile_id, "sender_id": facts.sender_id,
        "ip": ip, "email": facts.email, "message_id": facts.message_id, "detail": detail[:500],
    }
    return event_id, routing_key(kind), json.dumps(body, separators=(",", ":")).encode()


def _int(data: dict[str, Any], key: str, limit: int = _U64) -> int:
    """A non-negative integer that fits its ClickHouse column: a value that does not would
    fail the whole batch's INSERT, so it is refused here and the message dead-lettered."""
    value = data.get(key)
    if type(value) is int and 0 <= value <= limit:  # the common case first: 7 times per event
        return value
    if value is None:
        return 0
    raise BadEvent(f"{key}: not an integer in 0..{limit}")


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if type(value) is str:
        return _unicode(key, value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT])
    if not value:
        return ""
    raise BadEvent(f"{key}: not a string")


def _unicode(key: str, value: str) -> str:
    """JSON can spell a lone surrogate (\\ud800), which no UTF-8 column can hold: such an
    event would fail its whole batch's INSERT again at every redelivery."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise BadEvent(f"{key}: not valid Unicode") from None
    return value


_BEYOND_MICROSECONDS = re.compile(r"\.\d{6}([5-9])")  # a 7th digit of a fraction that rounds up


def parse_time(value: Any) -> datetime:
    """ISO 8601 (RFC 3339's lower-case t and z too); a fraction finer than microseconds is
    rounded on its 7th digit, as msgspec does on decode's fast path."""
    if not isinstance(value, str):
        raise BadEvent("time: not an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.upper())
        if _BEYOND_MICROSECONDS.search(value):
            parsed += timedelta(microseconds=1)
    except (ValueError, OverflowError):
        raise BadEvent("time: not an ISO 8601 string") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if not _EPOCH < parsed < _DATETIME_END:  # ClickHouse DateTime: 1970 .. 2106 (UInt32 seconds)
        raise BadEvent("time: outside 1970..2105")
    return parsed.astimezone(timezone.utc)


_json_decode = json.JSONDecoder().decode  # on text: json.loads would sniff the bytes' encoding first


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = _json_decode(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise BadEvent("not JSON") from None
    if not isinstance(data, dict):
        raise BadEvent("not a JSON object")
    return data


_decode_event = msgspec.json.Decoder(Event).decode
_EVENT_ROUTING = {k: _ROUTING_KEYS[k] for k in KINDS}
_UTC = timezone.utc


def decode(body: bytes, routing: str | None = None) -> Event:
    """Parses and checks one message; raises BadEvent naming the first problem.

    The common case, a message as trkaction and akmtad write it, is parsed and checked by
    msgspec against `Event`'s types and limits; what remains here is what those cannot say.
    Whatever the fast path refuses (an error, a null, a text to be cut, a time not in UTC)
    goes to _decode_checked, which either accepts it as the wire format allows or names the
    problem: both paths give the same Event for what both accept
    (tests/unit/test_events_decode.py)."""
    try:
        event = _decode_event(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _decode_checked(body, routing)
    expected = _EVENT_ROUTING.get(event.kind)
    at = event.time
    if (expected is None or (routing is not None and routing != expected) or not event.account_id
            or at.tzinfo is not _UTC or not _EPOCH < at < _DATETIME_END or not event.channel):
        return _decode_checked(body, routing)
    return event


def _decode_checked(body: bytes, routing: str | None = None) -> Event:
    """The careful decoder: a key that is absent or null takes its default, a text is cut
    to its column's length, a time without a zone is UTC; anything else that is not as the
    wire format says raises BadEvent naming it."""
    data = _json_object(body)
    get = data.get
    kind = get("kind")
    if kind not in KINDS:
        raise BadEvent("kind: unknown")
    if routing is not None and routing != _ROUTING_KEYS[kind]:
        raise BadEvent("kind does not match the routing key")
    try:
        event_id = uuid.UUID(str(get("event_id")))
    except ValueError:
        raise BadEvent("event_id: not a UUID") from None
    account_id = _int(data, "account_id", _U32)
    if not account_id:
        raise BadEvent("account_id: missing")
    time = parse_time(get("time"))
    profile_id = _str(data, "profile_id")
    detail = get("detail") or ""
    if not isinstance(detail, str):
        detail = json.dumps(detail, separators=(",", ":"))[:_MAX_TEXT]
    detail = _unicode("detail", detail[:_MAX_TEXT])
    return Event(
        event_id, kind, time, account_id, _int(data, "db_id", _U32), _int(data, "resource_id"),
        _int(data, "campaign_id"), profile_id, _str(data, "channel") or "email",
        _int(data, "link_id", _U32), _str(data, "url"), _str(data, "ip")[:64], _str(data, "user_agent"),
        _int(data, "sender_id"), _str(data, "email"), detail[:_MAX_TEXT], bool(get("is_bot")),
        _str(data, "bot_reason")[:64], _int(data, "issued"), _int(data, "launch", _U32),
        _str(data, "message_id"),
    )


# ClickHouse `events` columns written for each event, in this order (see schema/clickhouse.py).
COLUMNS = ("event_id", "event_time", "account_id", "db_id", "kind", "channel", "campaign_id",
           "profile_id", "resource_id", "sender_id", "link_id", "url", "is_bot", "bot_reason",
           "ip", "user_agent", "detail")


def row(event: Event) -> tuple:
    return (event.event_id, event.time, event.account_id, event.db_id, event.kind, event.channel,
            event.campaign_id, event.profile_id, event.resource_id, event.sender_id, event.link_id,
            event.url, 1 if event.is_bot else 0, event.bot_reason, event.ip, event.user_agent,
            event.detail)


_COLUMN_OF = tuple(operator.attrgetter("time" if name == "event_time" else name) for name in COLUMNS)
_EVENT_TIME = COLUMNS.index("event_time")
_timestamp = datetime.timestamp


def columns(batch: list[Event]) -> list[list]:
    """The batch as ClickHouse columns in COLUMNS order, for a columnar INSERT: each column
    gathered by one map in C instead of a tuple per event that the driver takes apart again,
    and event_time as unix seconds, which the driver writes as they are (a datetime it
    converts itself, one by one). is_bot stays a bool: UInt8 packs it as 0/1."""
    table = [list(map(value, batch)) for value in _COLUMN_OF]
    table[_EVENT_TIME] = list(map(int, map(_timestamp, table[_EVENT_TIME])))
    return table


# -- automation events: custom events and profile changes -------------------------------
# They travel on the same exchange under their own keys (procactions' queues do not bind
# them): procevent routes them to trigger campaigns, prochook's queue (bound to `#`) takes
# every event. They are not written to ClickHouse: analytics counts what tracking and the
# MTA report; a custom event's data is the sender's own, routed, not a report.
#   custom.event                                   (events/post)
#   profile.created | profile.changed | profile.subscribed | profile.unsubscribed   (api)
CUSTOM = "custom"
PROFILE_KINDS = ("profile_created", "profile_changed", "profile_subscribed", "profile_unsubscribed")
AUTOMATION_KINDS = (CUSTOM,) + PROFILE_KINDS
_ROUTING_KEYS.update({CUSTOM: "custom.event", **{k: k.replace("_", ".", 1) for k in PROFILE_KINDS}})
# what procevent's queue binds: the automation events, and the tracking (un)subscribes,
# which are subscription changes too
AUTOMATION_BINDINGS = ("custom.#", "profile.#", routing_key("subscribe"), routing_key("unsubscribe"))
MAX_DATA_BYTES = 32 * 1024  # a custom event's `data`, as JSON
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:")


def check_name(name: Any) -> str:
    """A custom event's name: 1-64 letters, digits and _ . - : (it is matched exactly)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not set(name) <= _NAME_CHARS:
        raise BadEvent("name: 1-64 characters of letters, digits, _ . - :")
    return name


def check_data(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadEvent("data: not a JSON object")
    if len(json.dumps(data, separators=(",", ":"), default=str)) > MAX_DATA_BYTES:
        raise BadEvent(f"data: larger than {MAX_DATA_BYTES} bytes as JSON")
    return data


@dataclass(frozen=True, slots=True)
class AutomationEvent:
    """A custom event or a profile change, about one profile of one account.

    `name` is the custom event's name; `fields` the names of the fields a change set;
    `resource_id`/`channel` the subscription a (un)subscribe is about. A tracking
    subscribe/unsubscribe (an `Event`) reads as profile_subscribed/unsubscribed."""
    event_id: str
    kind: str
    time: str  # ISO 8601, UTC
    account_id: int
    db_id: int
    profile_id: str
    name: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    resource_id: int = 0
    channel: str = ""

    @property
    def routing_key(self) -> str:
        return routing_key(self.kind)

    def encode(self) -> bytes:
        body = {"event_id": self.event_id, "kind": self.kind, "time": self.time,
                "account_id": self.account_id, "db_id": self.db_id, "profile_id": self.profile_id}
        if self.kind == CUSTOM:
            body.update(name=self.name, data=self.data)
        if self.fields:
            body["fields"] = list(self.fields)
        if self.resource_id:
            body.update(resource_id=self.resource_id, channel=self.channel)
        return json.dumps(body, separators=(",", ":"), default=str).encode()


def custom(account_id: int, db_id: int, profile_id: str, name: str, data: Any = None,
           now: float | None = None) -> AutomationEvent:
    return AutomationEvent(new_event_id(), CUSTOM, iso_now(now), account_id, db_id, profile_id,
                           name=check_name(name), data=check_data(data))


def profile_change(kind: str, account_id: int, db_id: int, profile_id: str, *,
                   fields: tuple[str, ...] = (), resource_id: int = 0, channel: str = "",
                   now: float | None = None) -> AutomationEvent:
    if kind not in PROFILE_KINDS:
        raise ValueError(f"kind: {kind!r} is not a profile change")
    return AutomationEvent(new_event_id(), kind, iso_now(now), account_id, db_id, profile_id,
                           fields=tuple(fields), resource_id=resource_id, channel=channel)


def decode_automation(body: bytes, routing: str | None = None) -> AutomationEvent:
    """An automation event, or a tracking subscribe/unsubscribe read as a profile change;
    raises BadEvent naming the first problem."""
    data = _json_object(body)
    kind = data.get("kind")
    if kind in ("subscribe", "unsubscribe"):
        tracked = decode(body, routing)
        return AutomationEvent(str(tracked.event_id), f"profile_{kind}d", data["time"], tracked.account_id,
                               tracked.db_id, tracked.profile_id, resource_id=tracked.resource_id,
                               channel=tracked.channel)
    if kind not in AUTOMATION_KINDS:
        raise BadEvent("kind: unknown")
    if routing is not None and routing != routing_key(kind):
        raise BadEvent("kind does not match the routing key")
    try:
        event_id = str(uuid.UUID(str(data.get("event_id"))))
    except ValueError:
        raise BadEvent("event_id: not a UUID") from None
    account_id = _int(data, "account_id", _U32)
    if not account_id:
        raise BadEvent("account_id: missing")
    parse_time(data.get("time"))
    profile_id = _str(data, "profile_id")
    if not profile_id:
        raise BadEvent("profile_id: missing")
    fields = data.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise BadEvent("fields: not a list of field names")
    return AutomationEvent(
        event_id, kind, data["time"], account_id, _int(data, "db_id", _U32), profile_id,
        name=check_name(data.get("name")) if kind == CUSTOM else "",
        data=check_data(data.get("data")) if kind == CUSTOM else {},
        fields=tuple(fields), resource_id=_int(data, "resource_id"), channel=_str(data, "channel"))


def decode_any(body: bytes, routing: str | None = None) -> Event | AutomationEvent:
    """Whatever travels on altcraft.events (what a queue bound to `#` receives): an
    automation event by its kind, a tracking or delivery event otherwise."""
    kind = _json_object(body).get("kind")
    return decode_automation(body, routing) if kind in AUTOMATION_KINDS else decode(body, routing)


def event_time(event: Event | AutomationEvent) -> datetime:
    """When it happened, aware UTC, for either kind of event."""
    return event.time if isinstance(event.time, datetime) else parse_time(event.time)
