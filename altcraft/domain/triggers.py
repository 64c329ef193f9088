"""Trigger campaigns: one message to one profile when something happens.

A trigger campaign (control DB `triggers`, ids from the campaigns' counter so that tracking
and reports never confuse the two) names a profile database, a template, a sender or a
virtual sender, a resource, and what sets it off:
  {"type": "api"}                                   campaigns/triggers/start, import_and_start
  {"type": "event", "name": "order_paid"}           a custom event of that name (events/post)
  {"type": "subscription", "status": "subscribed" | "unsubscribed", "resource_id": n?}
with an optional delay (`delay_seconds`).

Each message to send is a document of `trigger_sends` whose _id is its message id, derived
from (trigger, idempotency key or event id) by `message_id`. So:
  - the same API call repeated with one idempotency key, or an event delivered twice, finds
    the document already there (the API answers from it, the same as the first time), and
  - a message published twice (a worker killed after the publish, before `finish`) carries
    one Message-ID, which akmtad's de-duplication drops.
A send waits until `due_at` (now + delay, on an injectable clock), then is claimed under a
lease (`claim`); a worker that dies loses its lease and another claims the send again, so
a delay is never forgotten across restarts. Single-document atomic operations only (the
MongoDB stand-in has no multi-document transactions).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain import events
from altcraft.domain.automation_stamp import AutomationStamps
from altcraft.domain.clock import now as clock_now
from altcraft.domain.errors import Invalid, NotFound
from altcraft.domain.ids import next_id

TYPES = ("api", "event", "subscription")
SUBSCRIPTION_STATUSES = ("subscribed", "unsubscribed")
MAX_DELAY = 90 * 86400
PUBLIC = ("id", "account_id", "name", "db_id", "template_id", "sender_id", "vsender_id", "resource_id",
          "trigger", "delay_seconds", "active", "created_at", "updated_at")
SEND_STATES = ("waiting", "sent", "skipped", "failed")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NS = uuid.UUID("3f1c9a52-6a0e-4a55-9d8e-0c6b2f7e5d21")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k) for k in PUBLIC}


def message_id(trigger: dict[str, Any], idempotency_key: str = "", event_id: str = "") -> str:
    """The message id of one trigger send: a repeat (same key, same event) gets the same id.
    The key and the event id live in separate namespaces, so neither can forge the other;
    the trigger's random `uid` keeps ids apart from another platform's (or a rebuilt one's)
    trigger with the same number, whose ids akmtad's done keys may still hold."""
    if bool(idempotency_key) == bool(event_id):
        raise ValueError("give exactly one of idempotency_key and event_id")
    source = f"key:{idempotency_key}" if idempotency_key else f"event:{event_id}"
    name = f"{trigger.get('uid', '')}:{trigger['id']}:{source}"
    return f"trg{trigger['id']}.{uuid.uuid5(_NS, name).hex}"


def parse_trigger(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {"type": "api"}
    if not isinstance(raw, dict) or raw.get("type") not in TYPES:
        raise Invalid("trigger", '{"type": "api"}, {"type": "event", "name": ...} or '
                                 '{"type": "subscription", "status": "subscribed"|"unsubscribed"}')
    kind = raw["type"]
    unknown = set(raw) - {"type", "name", "status", "resource_id"}
    if unknown:
        raise Invalid(f"trigger.{sorted(unknown)[0]}", "unknown parameter")
    if kind == "api":
        return {"type": "api"}
    if kind == "event":
        try:
            return {"type": "event", "name": events.check_name(raw.get("name"))}
        except events.BadEvent as exc:
            raise Invalid("trigger.name", str(exc).split(": ", 1)[1]) from None
    status = raw.get("status")
    if status not in SUBSCRIPTION_STATUSES:
        raise Invalid("trigger.status", "subscribed or unsubscribed")
    resource = raw.get("resource_id")
    if resource is not None and (type(resource) is not int or resource < 1):
        raise Invalid("trigger.resource_id", "a resource id (a positive integer)")
    return {"type": "subscription", "status": status, "resource_id": resource}


def _delay(raw: Any) -> int:
    if type(raw) is not int or not 0 <= raw <= MAX_DELAY:
        raise Invalid("delay_seconds", f"whole seconds, 0..{MAX_DELAY} (90 days)")
    return raw


def matches(trigger: dict[str, Any], event: events.AutomationEvent) -> bool:
    """Whether an event sets off an active trigger campaign (API triggers: never by events)."""
    if not trigger.get("active") or trigger["account_id"] != event.account_id or trigger["db_id"] != event.db_id:
        return False
    spec = trigger["trigger"]
    if spec["type"] == "event":
        return event.kind == events.CUSTOM and event.name == spec["name"]
    if spec["type"] == "subscription":
        return (event.kind == f"profile_{spec['status']}" and event.channel in ("", "email")
                and spec.get("resource_id") in (None, event.resource_id))
    return False


def job(trigger: dict[str, Any], profile_id: str, data: dict[str, Any], *, idempotency_key: str = "",
        event_id: str = "", at: datetime) -> dict[str, Any]:
    """One send, as procevent and the API hand it to proctrigger (and as it is stored):
    due at `at` (the call's or the event's time) plus the trigger's delay."""
    return {"_id": message_id(trigger, idempotency_key, event_id), "account_id": trigger["account_id"],
            "trigger_id": trigger["id"], "db_id": trigger["db_id"], "profile_id": profile_id,
            "data": data, "idempotency_key": idempotency_key, "event_id": event_id,
            "due_at": at + timedelta(seconds=trigger.get("delay_seconds", 0))}


def encode_job(send: dict[str, Any]) -> bytes:
    return json.dumps({**send, "due_at": send["due_at"].isoformat()}, separators=(",", ":"),
                      default=str).encode()


def decode_job(body: bytes) -> dict[str, Any]:
    try:
        send = json.loads(body)
        send["due_at"] = datetime.fromisoformat(send["due_at"])
        for key, kind in (("_id", str), ("account_id", int), ("trigger_id", int), ("db_id", int),
                          ("profile_id", str), ("data", dict)):
            if not isinstance(send.get(key), kind):
                raise ValueError(key)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise events.BadEvent(f"not a trigger job ({exc})") from None
    return send


def answer(send: dict[str, Any]) -> dict[str, Any]:
    """What the API answers for a send: made only of what never changes, so a repeated call
    gets exactly the first answer."""
    return {"message_id": send["_id"], "trigger_id": send["trigger_id"], "profile_id": send["profile_id"],
            "due_at": send["due_at"]}


class Triggers:
    def __init__(self, control: Database, clock: Callable[[], datetime] = clock_now):
        self.control = control
        self.collection = control.triggers
        self.sends = control.trigger_sends
        self.stamps = AutomationStamps(control)
        self.clock = clock

    # -- trigger campaigns ---------------------------------------------------------------
    def add(self, account_id: int, name: str, db_id: int, template_id: int, sender_id: int | None = None,
            vsender_id: int | None = None, resource_id: int = 1, trigger: Any = None,
            delay_seconds: int = 0, active: bool = True) -> dict[str, Any]:
        if not isinstance(name, str) or not name.strip():
            raise Invalid("name", "a non-empty name")
        if (sender_id is None) == (vsender_id is None):
            raise Invalid("sender_id", "give exactly one of sender_id and vsender_id")
        stamp = self.clock()
        doc = {"id": next_id(self.control, "campaigns"), "uid": uuid.uuid4().hex,
               "account_id": account_id, "name": name.strip(),
               "db_id": db_id, "template_id": template_id, "sender_id": sender_id, "vsender_id": vsender_id,
               "resource_id": resource_id, "trigger": parse_trigger(trigger),
               "delay_seconds": _delay(delay_seconds), "active": bool(active),
               "created_at": stamp, "updated_at": stamp}
        self.collection.insert_one(doc)
        self.stamps.bump(account_id)
        return public(doc)

    def clone(self, account_id: int, trigger_id: int, name: str | None = None) -> dict[str, Any]:
        """A copy of the trigger campaign's settings under a new id, inactive: a copy that went off
        at once would send a second message for every event the source answers."""
        source = self.get(account_id, trigger_id)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise Invalid("name", "empty: give a name, or leave it out for \"Clone of ...\"")
        stamp = self.clock()
        doc = {**{k: source.get(k) for k in ("account_id", "db_id", "template_id", "sender_id", "vsender_id",
                                             "resource_id", "trigger", "delay_seconds")},
               "id": next_id(self.control, "campaigns"), "uid": uuid.uuid4().hex,
               "name": name.strip() if name is not None else f"Clone of {source['name']}"[:200],
               "active": False, "created_at": stamp, "updated_at": stamp}
        self.collection.insert_one(doc)
        self.stamps.bump(account_id)
        return public(doc)

    def get(self, account_id: int, trigger_id: Any) -> dict[str, Any]:
        doc = self.collection.find_one({"id": trigger_id, "account_id": account_id})
        if doc is None:
            raise NotFound(f"trigger campaign {trigger_id} not found")
        return doc

    def list(self, account_id: int) -> list[dict[str, Any]]:
        return [public(d) for d in self.collection.find({"account_id": account_id}).sort("id", 1)]

    def active(self, account_id: int) -> list[dict[str, Any]]:
        return list(self.collection.find({"account_id": account_id, "active": True}))

    def update(self, account_id: int, trigger_id: int, **changes: Any) -> dict[str, Any]:
        current = self.get(account_id, trigger_id)
        fields = {k: v for k, v in changes.items() if v is not None}
        if "name" in fields and (not isinstance(fields["name"], str) or not fields["name"].strip()):
            raise Invalid("name", "a non-empty name")
        if "trigger" in fields:
            fields["trigger"] = parse_trigger(fields["trigger"])
        if "delay_seconds" in fields:
            fields["delay_seconds"] = _delay(fields["delay_seconds"])
        if "sender_id" in fields and "vsender_id" in fields:
            raise Invalid("sender_id", "give one of sender_id and vsender_id")
        if "sender_id" in fields:
            fields["vsender_id"] = None
        elif "vsender_id" in fields:
            fields["sender_id"] = None
        fields["updated_at"] = self.clock()
        self.collection.update_one({"id": current["id"], "account_id": account_id}, {"$set": fields})
        self.stamps.bump(account_id)
        return public(self.get(account_id, trigger_id))

    # -- sends ---------------------------------------------------------------------------
    def find_send(self, send_id: str) -> dict[str, Any] | None:
        return self.sends.find_one({"_id": send_id})

    def enqueue(self, send: dict[str, Any], owner: str | None = None,
                lease_seconds: float = 30.0) -> tuple[dict[str, Any], bool]:
        """Stores a send unless one with its id exists; (the stored send, whether it is new).
        With `owner`, a new send that is due is stored already leased to it (its claim and
        its insert are one write)."""
        stamp = self.clock()
        doc = {**send, "state": "waiting", "lease_until": _EPOCH, "owner": None, "created_at": stamp}
        if owner is not None and send["due_at"] <= stamp:
            doc.update(owner=owner, lease_until=stamp + timedelta(seconds=lease_seconds), attempts=1)
        try:
            self.sends.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            stored = self.sends.find_one({"_id": send["_id"]})
            if stored is None:  # deleted in between: store again
                return self.enqueue(send, owner, lease_seconds)
            return stored, False

    def claim(self, owner: str, send_id: str | None = None, lease_seconds: float = 30.0) -> dict[str, Any] | None:
        """A waiting send that is due and not leased (this one, or the earliest), leased to owner."""
        stamp = self.clock()
        query: dict[str, Any] = {"state": "waiting", "due_at": {"$lte": stamp}, "lease_until": {"$lte": stamp}}
        if send_id is not None:
            query["_id"] = send_id
        return self.sends.find_one_and_update(
            query, {"$set": {"owner": owner, "lease_until": stamp + timedelta(seconds=lease_seconds)},
                    "$inc": {"attempts": 1}},
            sort=[("due_at", ASCENDING)], return_document=ReturnDocument.AFTER)

    def finish(self, send_id: str, owner: str, state: str, reason: str = "") -> bool:
        """Records the outcome, if `owner` still holds the lease."""
        if state not in SEND_STATES[1:]:
            raise ValueError(f"state: {state!r}")
        result = self.sends.update_one({"_id": send_id, "owner": owner, "state": "waiting"},
                                       {"$set": {"state": state, "reason": reason[:500],
                                                 "finished_at": self.clock()}})
        return result.modified_count == 1
