"""Outgoing webhooks: an account's endpoints, their signing secrets, and the outbox.

Signing follows Standard Webhooks 1.0: the headers `webhook-id`, `webhook-timestamp` (Unix
seconds of the attempt) and `webhook-signature`, a space-separated list of
`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per valid secret. A secret is
`whsec_` + base64 of 32 random bytes; rotating keeps the previous secret valid for an overlap
during which both signatures are sent, so a receiver can switch without losing an event.

The outbox (control DB, `webhook_outbox`) holds one document per (endpoint, event). Its `_id`
is the webhook-id, derived from the pair, so the document store's own unique index turns a
redelivered event into no second entry, and every attempt for it carries the same id:
receivers de-duplicate by it. The body is fixed when the entry is written; each attempt signs
it with its own timestamp.

Sending is at least once. A sender claims due entries by pushing their `next_at` one lease
into the future with its own claim token; if the sender dies, an entry simply becomes due
again when the lease runs out. A result is recorded only by the
claim that made the attempt. Retries follow RETRY_SCHEDULE with jitter (about three days);
a `410 Gone` disables the endpoint; after the last retry the entry is `failed`. Each attempt
is logged on the entry (status, time, error); `replay` sends an entry again with the same id.

Kept in the control DB next to the accounts: one sender loop serves every account, and
every query names the account (another account's endpoint is "not found").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import secrets as _secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database

from altcraft.domain.clock import now as _now
from altcraft.domain.errors import Invalid, NotFound
from altcraft.domain.ids import next_id
from altcraft.domain.netguard import AddressPolicy, Refused, Resolver
from altcraft.stores.documents import insert_new

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64
# Standard Webhooks' schedule, stretched to about three days (75.6 h after the first attempt)
RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
JITTER = 0.1  # each delay is drawn from +-10 % of the schedule's value
MAX_BODY = 20_000
LOG_KEEP = 50  # attempts kept on an entry
MAX_ENDPOINTS = 100  # per account
MAX_DESCRIPTION = 500
TOPIC_WORD = "abcdefghijklmnopqrstuvwxyz0123456789_-"

Clock = Callable[[], datetime]


# -- signing ------------------------------------------------------------------------------
def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    return base64.b64decode(raw)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed with every secret given."""
    if not secrets:
        raise ValueError("no secret to sign with")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
        "content-type": "application/json",
    }


def valid_secrets(endpoint: dict[str, Any], at: datetime) -> list[str]:
    """The secrets an attempt at `at` is signed with: the current one and any previous one
    whose overlap has not ended."""
    return [s["secret"] for s in endpoint.get("secrets", [])
            if s.get("expires_at") is None or s["expires_at"] > at]


# -- retry schedule -----------------------------------------------------------------------
def retry_delay(failures: int, rng: random.Random | None = None, scale: float = 1.0) -> float | None:
    """Seconds to wait after the `failures`-th failed attempt (1-based), or None when the
    schedule is over. `scale` shortens every delay (main.json WEBHOOKS.TIME_SCALE, for tests)."""
    if failures < 1 or failures > len(RETRY_SCHEDULE):
        return None
    base = RETRY_SCHEDULE[failures - 1]
    spread = (rng or random).uniform(-JITTER, JITTER)
    return base * (1 + spread) * scale


def outcome(status: int | None) -> str:
    """'ok' (2xx), 'gone' (410: the receiver asks us to stop) or 'retry' (anything else,
    redirects included: they are not followed)."""
    if status is not None and 200 <= status < 300:
        return "ok"
    if status == 410:
        return "gone"
    return "retry"


# -- event filters ------------------------------------------------------------------------
def check_filter(patterns: Any) -> list[str]:
    """Patterns over event types (the routing key: `action.open`, `delivery.bounced_hard`,
    a custom event's type): a type itself, `*` for one word, `#` for any number of words
    (`action.*`, `delivery.#`, `#` for everything)."""
    if not isinstance(patterns, list) or not patterns:
        raise Invalid("events", "a non-empty list of event types or patterns (\"#\" for all)")
    cleaned = []
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern or len(pattern) > 200:
            raise Invalid(f"events[{i}]", "an event type or pattern such as action.open, action.* or #")
        for word in pattern.split("."):
            if word not in ("*", "#") and (not word or any(c not in TOPIC_WORD for c in word.lower())):
                raise Invalid(f"events[{i}]", f"{pattern!r}: words of letters, digits, _ or -, "
                                              "or * / #, separated by dots")
        cleaned.append(pattern)
    return list(dict.fromkeys(cleaned))


def _match(words: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(words[i:], rest) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head.lower() == words[0].lower()) and _match(words[1:], rest)


def matches(patterns: Iterable[str], event_type: str) -> bool:
    words = event_type.split(".")
    return any(_match(words, p.split(".")) for p in patterns)


# -- payload ------------------------------------------------------------------------------
_WEBHOOK_NS = uuid.UUID("3f1b6c52-9d0e-4c1a-8f7e-5a2b4c6d8e90")


def message_id(endpoint_id: int, event_id: str) -> str:
    """The webhook-id: the same for an (endpoint, event) pair however often it is sent."""
    return "msg_" + uuid.uuid5(_WEBHOOK_NS, f"{endpoint_id}:{event_id}").hex


def payload(event_type: str, time: datetime, data: dict[str, Any]) -> bytes:
    """Standard Webhooks' body: {"type", "timestamp", "data"}; `data` is the event as it
    travelled on the broker (domain/events.py's wire format)."""
    body = json.dumps({"type": event_type, "timestamp": time.isoformat().replace("+00:00", "Z"),
                       "data": data}, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_BODY:  # free-text fields are cut by the wire format; this is a backstop
        body = json.dumps({"type": event_type, "timestamp": time.isoformat().replace("+00:00", "Z"),
                           "data": {"event_id": data.get("event_id"), "truncated": True}},
                          separators=(",", ":")).encode()
    return body


# -- endpoints ----------------------------------------------------------------------------
PUBLIC = ("id", "account_id", "url", "events", "enabled", "description", "disabled_reason",
          "created_at", "updated_at", "secret_rotated_at")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """An endpoint as the API shows it: never its secrets (add and rotate_secret return the new one)."""
    out = {k: doc.get(k) for k in PUBLIC}
    out["previous_secret_expires_at"] = next(
        (s["expires_at"] for s in doc.get("secrets", []) if s.get("expires_at") is not None), None)
    return out


@dataclass
class Endpoints:
    control: Database
    policy: AddressPolicy
    resolve: Resolver
    clock: Clock = _now

    @property
    def collection(self):
        return self.control.webhooks

    def _check_url(self, url: Any) -> str:
        try:
            self.policy.target(url, self.resolve)
        except Refused as exc:
            raise Invalid("url", f"refused: {exc}") from None
        return url

    @staticmethod
    def _description(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("description", "must be a string")
        return value.strip()[:MAX_DESCRIPTION]

    def add(self, account_id: int, url: str, events: list[str] | None = None, description: str = "",
            enabled: bool = True) -> dict[str, Any]:
        url = self._check_url(url)
        patterns = check_filter(events if events is not None else ["#"])
        if self.collection.count_documents({"account_id": account_id}) >= MAX_ENDPOINTS:
            raise Invalid("url", f"an account has at most {MAX_ENDPOINTS} webhooks")
        stamp = self.clock()
        secret = new_secret()
        doc = {"id": next_id(self.control, "webhooks"), "account_id": account_id, "url": url,
               "events": patterns, "enabled": bool(enabled), "description": self._description(description),
               "disabled_reason": "", "secrets": [{"secret": secret, "created_at": stamp, "expires_at": None}],
               "created_at": stamp, "updated_at": stamp, "secret_rotated_at": stamp}
        self.collection.insert_one(doc)
        return {**public(doc), "secret": secret}

    def get_doc(self, account_id: int, endpoint_id: int) -> dict[str, Any]:
        doc = self.collection.find_one({"account_id": account_id, "id": endpoint_id})
        if doc is None:
            raise NotFound(f"webhook {endpoint_id} not found")
        return doc

    def get(self, account_id: int, endpoint_id: int) -> dict[str, Any]:
        return public(self.get_doc(account_id, endpoint_id))

    def list(self, account_id: int) -> list[dict[str, Any]]:
        return [public(d) for d in self.collection.find({"account_id": account_id}).sort("id", 1)]

    def update(self, account_id: int, endpoint_id: int, *, url: str | None = None,
               events: list[str] | None = None, description: str | None = None,
               enabled: bool | None = None) -> dict[str, Any]:
        self.get_doc(account_id, endpoint_id)
        changes: dict[str, Any] = {"updated_at": self.clock()}
        if url is not None:
            changes["url"] = self._check_url(url)
        if events is not None:
            changes["events"] = check_filter(events)
        if description is not None:
            changes["description"] = self._description(description)
        if enabled is not None:
            changes["enabled"] = bool(enabled)
            if enabled:
                changes["disabled_reason"] = ""
        doc = self.collection.find_one_and_update({"account_id": account_id, "id": endpoint_id},
                                                  {"$set": changes}, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise NotFound(f"webhook {endpoint_id} not found")
        return public(doc)

    def delete(self, account_id: int, endpoint_id: int) -> None:
        """Removes the endpoint; its entries still in the outbox are cancelled when claimed."""
        if self.collection.delete_one({"account_id": account_id, "id": endpoint_id}).deleted_count == 0:
            raise NotFound(f"webhook {endpoint_id} not found")

    def rotate_secret(self, account_id: int, endpoint_id: int, overlap: timedelta) -> dict[str, Any]:
        """A new secret; the current one stays valid (both signatures are sent) for `overlap`.
        Secrets whose overlap is over are dropped."""
        doc = self.get_doc(account_id, endpoint_id)
        stamp = self.clock()
        kept = []
        for entry in doc.get("secrets", []):
            expires = entry.get("expires_at")
            if expires is None:
                expires = stamp + overlap
            if expires > stamp:
                kept.append({**entry, "expires_at": expires})
        secret = new_secret()
        secrets = [{"secret": secret, "created_at": stamp, "expires_at": None}, *kept]
        updated = self.collection.find_one_and_update(
            {"account_id": account_id, "id": endpoint_id},
            {"$set": {"secrets": secrets, "secret_rotated_at": stamp, "updated_at": stamp}},
            return_document=ReturnDocument.AFTER)
        if updated is None:
            raise NotFound(f"webhook {endpoint_id} not found")
        return {**public(updated), "secret": secret}

    def disable(self, endpoint_id: int, reason: str) -> None:
        self.collection.update_one({"id": endpoint_id}, {"$set": {"enabled": False, "disabled_reason": reason,
                                                                  "updated_at": self.clock()}})

    def listening(self, account_id: int) -> list[dict[str, Any]]:
        """The account's enabled endpoints (what an event is matched against)."""
        return list(self.collection.find({"account_id": account_id, "enabled": True},
                                         {"id": 1, "events": 1}))


# -- outbox -------------------------------------------------------------------------------
ENTRY_PUBLIC = ("id", "endpoint_id", "event_id", "type", "state", "attempts", "next_at", "created_at",
                "last_status", "last_error", "delivered_at")


def entry_public(doc: dict[str, Any], with_log: bool = False) -> dict[str, Any]:
    out = {k: doc.get(k) for k in ENTRY_PUBLIC}
    out["id"] = doc["_id"]
    if out["state"] != "pending":
        out["next_at"] = None
    if with_log:
        out["log"] = doc.get("log", [])
    return out


@dataclass
class Claim:
    """An entry taken by one sender: what to send and the token that may record the result."""
    id: str
    token: str
    account_id: int
    endpoint_id: int
    body: bytes
    failures: int


@dataclass
class Outbox:
    control: Database
    clock: Clock = _now
    scale: float = 1.0  # WEBHOOKS.TIME_SCALE: every retry delay is multiplied by it
    rng: random.Random | None = None

    @property
    def collection(self):
        return self.control.webhook_outbox

    def entry(self, account_id: int, endpoint_id: int, event_id: str, event_type: str,
              body: bytes) -> dict[str, Any]:
        stamp = self.clock()
        return {"_id": message_id(endpoint_id, event_id), "account_id": account_id, "endpoint_id": endpoint_id,
                "event_id": event_id, "type": event_type, "body": body.decode(), "state": "pending",
                "attempts": 0, "failures": 0, "next_at": stamp, "created_at": stamp, "claim": "",
                "last_status": None, "last_error": "", "delivered_at": None, "log": []}

    def put(self, entries: list[dict[str, Any]]) -> int:
        """Writes the entries (made by `entry`) that are not there yet; returns how many were
        new. An (endpoint, event) pair written before is refused by the _id index: no second
        entry, whatever else the batch holds."""
        if not entries:
            return 0
        return len(entries) - len(insert_new(self.collection, entries))

    def claim(self, lease_seconds: float, limit: int = 1) -> list[Claim]:
        """Up to `limit` due entries, leased: their next_at moves one lease ahead, so that
        each is due again (for any sender) if no result is recorded for it. The lease is not
        scaled: it must outlast a request. Claims are made by one thread of a process (see
        services/prochook.py): the update names the entries found, and on MongoDB the
        `next_at` condition keeps two processes from both taking one."""
        stamp = self.clock()
        due = [d["_id"] for d in self.collection.find({"state": "pending", "next_at": {"$lte": stamp}}, {"_id": 1})
               .sort("next_at", 1).limit(limit)]
        if not due:
            return []
        token = uuid.uuid4().hex
        self.collection.update_many(
            {"_id": {"$in": due}, "state": "pending", "next_at": {"$lte": stamp}},
            {"$set": {"claim": token, "next_at": stamp + timedelta(seconds=lease_seconds)}, "$inc": {"attempts": 1}})
        return [Claim(d["_id"], token, d["account_id"], d["endpoint_id"], d["body"].encode(), d.get("failures", 0))
                for d in self.collection.find({"_id": {"$in": due}, "claim": token})]

    def _log(self, claim: Claim, status: int | None, error: str, duration: float) -> dict[str, Any]:
        return {"$push": {"log": {"$each": [{"at": self.clock(), "status": status, "error": error[:300],
                                             "duration_ms": round(duration * 1000)}], "$slice": -LOG_KEEP}}}

    def record(self, claim: Claim, status: int | None, error: str = "", duration: float = 0.0,
               retry_after: float | None = None) -> str:
        """Records the attempt made under `claim`; returns the entry's new state (or 'lost'
        when the lease ran out and another sender took the entry over)."""
        result = outcome(status)
        stamp = self.clock()
        changes: dict[str, Any] = {"last_status": status, "last_error": error[:300], "claim": ""}
        if result == "ok":
            changes.update(state="delivered", delivered_at=stamp)
        elif result == "gone":
            changes.update(state="failed")
        else:
            delay = retry_delay(claim.failures + 1, self.rng, self.scale)
            if delay is None:
                changes.update(state="failed")
            else:
                if retry_after:
                    delay = max(delay, min(retry_after * self.scale, RETRY_SCHEDULE[-1] * self.scale))
                changes.update(next_at=stamp + timedelta(seconds=delay))
        update = {"$set": changes, **self._log(claim, status, error, duration)}
        if result != "ok":
            update["$inc"] = {"failures": 1}
        doc = self.collection.find_one_and_update({"_id": claim.id, "claim": claim.token}, update,
                                                  return_document=ReturnDocument.AFTER)
        return doc["state"] if doc else "lost"

    def prune(self, keep: timedelta) -> int:
        """Drops delivered, failed and cancelled entries created more than `keep` ago (their
        log goes with them); pending ones stay whatever their age."""
        result = self.collection.delete_many({"state": {"$in": ["delivered", "failed", "cancelled"]},
                                              "created_at": {"$lt": self.clock() - keep}})
        return result.deleted_count

    def cancel(self, claim: Claim, reason: str) -> None:
        """The endpoint was deleted or disabled: the entry is kept, not sent (replay sends it)."""
        self.collection.update_one(
            {"_id": claim.id, "claim": claim.token},
            {"$set": {"state": "cancelled", "last_error": reason, "claim": ""}, "$inc": {"attempts": -1}})

    def log(self, account_id: int, endpoint_id: int | None = None, state: str | None = None,
            limit: int = 100, skip: int = 0) -> tuple[list[dict[str, Any]], int]:
        query: dict[str, Any] = {"account_id": account_id}
        if endpoint_id is not None:
            query["endpoint_id"] = endpoint_id
        if state is not None:
            query["state"] = state
        total = self.collection.count_documents(query)
        docs = self.collection.find(query, {"body": 0}).sort("created_at", -1).skip(skip).limit(limit)
        return [entry_public(d, with_log=True) for d in docs], total

    def get(self, account_id: int, entry_id: str) -> dict[str, Any]:
        doc = self.collection.find_one({"_id": entry_id, "account_id": account_id})
        if doc is None:
            raise NotFound(f"webhook message {entry_id} not found")
        return doc

    def replay(self, account_id: int, entry_ids: Iterable[str] = (), endpoint_id: int | None = None,
               states: Sequence[str] = ("failed", "cancelled")) -> int:
        """Sends entries again, with the same webhook-id and a fresh retry schedule: the named
        ones (any state but pending), or the endpoint's entries in `states`."""
        query: dict[str, Any] = {"account_id": account_id, "state": {"$ne": "pending"}}
        ids = list(entry_ids)
        if ids:
            for entry_id in ids:
                self.get(account_id, entry_id)  # another account's id is "not found"
            query["_id"] = {"$in": ids}
        elif endpoint_id is not None:
            query.update(endpoint_id=endpoint_id, state={"$in": list(states)})
        else:
            raise Invalid("id", "name the messages (id) or the webhook (webhook_id) to replay")
        result = self.collection.update_many(query, {"$set": {"state": "pending", "next_at": self.clock(),
                                                              "failures": 0, "claim": ""}})
        return result.modified_count


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
