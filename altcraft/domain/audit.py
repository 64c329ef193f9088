"""The audit journal: every change by anyone (API, panels, aktool), one hash chain per platform.

An entry says when, who (an admin, a user or a token, and from which address), through which
channel, the action, the object, the account, and a summary of what changed with secrets
redacted (`redact`: one rule for every channel). Entries are stored append-only in ClickHouse
(`audit` table, MergeTree ordered by seq); each carries the previous entry's hash, and its own
hash is SHA-256 over that and its canonical JSON, so `verify` names the first sequence number
where a deleted or edited entry breaks the chain.

One order for concurrent writers. A writer claims the next sequence number by inserting a
document with `_id = seq` into the control database's `audit_chain`: of two writers claiming
the same number, the unique `_id` lets exactly one succeed (MongoDB and FerretDB both enforce
a unique key atomically - FerretDB does not make a *conditional update* atomic, which is why a
compare-and-set on a counter is not used). The loser reads the winner's claim and tries the
number after it. The claim holds the whole entry, so an entry whose ClickHouse insert failed is
marked in `audit_pending` and shipped later (`ship_pending`, run by `aktool audit verify`); a
writer killed between its claim and its insert leaves no mark, and verify names that entry
missing (its claim still shows what it was). The claims' highest number is the head verify
compares ClickHouse's last entry with (so a deleted last entry is found too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

log = logging.getLogger("altcraft.audit")

Channel = Literal["api", "webcontrol", "webadmin", "aktool"]
ActorKind = Literal["admin", "user", "token", "system"]
GENESIS = "0" * 64
REDACTED = "[redacted]"
TABLE = "audit"

# A key naming a secret (matched anywhere in the key, any case) never has its value written.
SECRET_KEY = re.compile(r"password|passwd|secret|token|private|totp|api_key|apikey|credential", re.I)
# Values that are secrets whatever their key is called.
SECRET_VALUE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bwhsec_[A-Za-z0-9+/=_-]+|\$argon2")
MAX_STRING, MAX_ITEMS, MAX_DEPTH, MAX_SUMMARY = 200, 20, 4, 4096


def redact(value: Any, depth: int = 0) -> Any:
    """A summary of `value` safe to journal: secret keys' values replaced, secret-looking
    values replaced, long strings cut, long lists counted, deep nesting flattened."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return {"keys": len(value)}
        return {str(k): REDACTED if SECRET_KEY.search(str(k)) else redact(v, depth + 1)
                for k, v in list(value.items())[:MAX_ITEMS * 5]}
    if isinstance(value, (list, tuple, set)):
        items = list(value)
        if len(items) > MAX_ITEMS:
            return {"count": len(items)}
        return [redact(v, depth + 1) for v in items]
    if isinstance(value, str):
        if SECRET_VALUE.search(value):
            return REDACTED
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "..."
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value), depth)


def summary_json(changes: dict[str, Any]) -> str:
    text = canonical(redact(changes))
    if len(text) > MAX_SUMMARY:  # still bounded: say which fields changed
        text = canonical({"fields": sorted(map(str, changes)), "truncated": True})
    return text


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str
    name: str = ""
    address: str = ""


@dataclass(frozen=True)
class Entry:
    seq: int
    at_ms: int
    actor_kind: str
    actor_id: str
    actor_name: str
    source: str
    channel: str
    action: str
    object_kind: str
    object_id: str
    account_id: int
    summary: str  # canonical JSON, redacted
    prev_hash: str
    hash: str = field(default="")

    def body(self) -> str:
        """The canonical JSON the hash covers: every field but the hash itself."""
        data = asdict(self)
        data.pop("hash")
        return canonical(data)

    def computed_hash(self) -> str:
        return chain_hash(self.prev_hash, self.body())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = datetime.fromtimestamp(self.at_ms / 1000, timezone.utc).isoformat(timespec="milliseconds")
        data["summary"] = json.loads(self.summary) if self.summary else {}
        return data


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


COLUMNS = ("seq", "at", "at_ms", "actor_kind", "actor_id", "actor_name", "source", "channel", "action",
           "object_kind", "object_id", "account_id", "summary", "prev_hash", "hash")


def _row(entry: Entry) -> tuple:
    at = datetime.fromtimestamp(entry.at_ms / 1000, timezone.utc).replace(tzinfo=None)
    return (entry.seq, at, entry.at_ms, entry.actor_kind, entry.actor_id, entry.actor_name, entry.source,
            entry.channel, entry.action, entry.object_kind, entry.object_id, entry.account_id, entry.summary,
            entry.prev_hash, entry.hash)


def _entry(row: tuple) -> Entry:
    values = dict(zip(COLUMNS, row))
    values.pop("at")
    return Entry(**values)


@dataclass(frozen=True)
class Break:
    seq: int
    reason: str


@dataclass(frozen=True)
class Verdict:
    entries: int
    head: int
    shipped: int  # pending entries shipped to ClickHouse before checking
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass(frozen=True)
class Filter:
    since_ms: int | None = None
    until_ms: int | None = None
    actor: str | None = None  # actor id or name
    account_id: int | None = None
    action: str | None = None  # exact, or a prefix ending in "/" or "."
    channel: str | None = None
    from_seq: int | None = None  # newest first: entries with seq < from_seq
    limit: int = 50


class Journal:
    """Appends to, lists and verifies the chain. `analytics` gives this thread's ClickHouse
    client (the driver's client is not thread-safe)."""

    def __init__(self, control: Database, analytics: Callable[[], Any], clock_ms: Callable[[], int] | None = None):
        self.control = control
        self.claims = control.audit_chain
        self.pending = control.audit_pending
        self.analytics = analytics
        self.clock_ms = clock_ms or (lambda: int(datetime.now(timezone.utc).timestamp() * 1000))

    # -- append ---------------------------------------------------------------------------
    def record(self, actor: Actor, channel: Channel, action: str, *, object_kind: str = "",
               object_id: Any = "", account_id: int | None = None,
               changes: dict[str, Any] | None = None) -> Entry:
        summary = summary_json(changes or {})
        seq, prev = self._head()
        for _ in range(1000):
            entry = Entry(seq + 1, self.clock_ms(), actor.kind, str(actor.id), actor.name, actor.address, channel,
                          action, object_kind, "" if object_id is None else str(object_id), int(account_id or 0),
                          summary, prev)
            entry = Entry(**{**asdict(entry), "hash": entry.computed_hash()})
            try:
                self.claims.insert_one({"_id": entry.seq, "hash": entry.hash, "entry": asdict(entry)})
            except DuplicateKeyError:  # another writer took this number: follow its claim
                seq, prev = self._walk(seq + 1)
                continue
            self._advance_hint(entry.seq, entry.hash)
            self._ship([entry])
            return entry
        raise RuntimeError("audit: no sequence number claimed after 1000 attempts")

    def _head(self) -> tuple[int, str]:
        """The head as the hint says (one read); a stale hint only makes the next claim
        collide and walk forward."""
        hint = self.control.counters.find_one({"_id": "audit_head"}) or {}
        return int(hint.get("seq", 0)), str(hint.get("hash", GENESIS))

    def _walk(self, seq: int) -> tuple[int, str]:
        """The last claim at or after `seq` (claims are contiguous), with its hash."""
        claim = self.claims.find_one({"_id": seq}, {"hash": 1}) if seq else None
        while True:
            after = self.claims.find_one({"_id": seq + 1}, {"hash": 1})
            if after is None:
                return seq, claim["hash"] if claim else GENESIS
            seq, claim = seq + 1, after

    def _advance_hint(self, seq: int, hash_: str) -> None:
        # seq and hash are written together (one document), so the hint is always a real
        # (seq, hash) pair; FerretDB may let an older pair win a race: a stale hint is fine
        try:
            self.control.counters.update_one({"_id": "audit_head", "seq": {"$lt": seq}},
                                             {"$set": {"seq": seq, "hash": hash_}}, upsert=True)
        except DuplicateKeyError:  # a newer hint is there already
            pass

    def _ship(self, entries: list[Entry]) -> int:
        try:
            self.analytics().insert(TABLE, COLUMNS, [_row(e) for e in entries])
        except Exception as exc:  # the claim keeps the entry; ship_pending sends it later
            log.error("audit: %d entries not yet in ClickHouse (%s): kept in audit_chain", len(entries),
                      type(exc).__name__)
            try:
                self.pending.insert_many([{"_id": e.seq} for e in entries], ordered=False)
            except Exception:  # noqa: BLE001 - verify will name the entry missing
                log.exception("audit: entries %s not marked pending", [e.seq for e in entries])
            return 0
        return len(entries)

    def ship_pending(self) -> int:
        """Ships the entries whose ClickHouse insert failed (marked in audit_pending: the
        normal path writes no marker, so an entry deleted from ClickHouse is never re-shipped)."""
        marks = sorted(doc["_id"] for doc in self.pending.find({}))
        if not marks:
            return 0
        pending = [Entry(**doc["entry"]) for doc in self.claims.find({"_id": {"$in": marks}})]
        shipped = self._ship(sorted(pending, key=lambda e: e.seq))
        if shipped:
            self.pending.delete_many({"_id": {"$in": marks}})
        return shipped

    # -- read -----------------------------------------------------------------------------
    def list(self, flt: Filter) -> list[dict[str, Any]]:
        where, params = ["1"], {}
        if flt.since_ms is not None:
            where.append("at_ms >= %(since)s"), params.update(since=flt.since_ms)
        if flt.until_ms is not None:
            where.append("at_ms < %(until)s"), params.update(until=flt.until_ms)
        if flt.actor:
            where.append("(actor_id = %(actor)s OR actor_name = %(actor)s)"), params.update(actor=flt.actor)
        if flt.account_id is not None:
            where.append("account_id = %(account)s"), params.update(account=flt.account_id)
        if flt.action:
            if flt.action.endswith(("/", ".")):
                where.append("startsWith(action, %(action)s)")
            else:
                where.append("action = %(action)s")
            params.update(action=flt.action)
        if flt.channel:
            where.append("channel = %(channel)s"), params.update(channel=flt.channel)
        if flt.from_seq is not None:
            where.append("seq < %(from_seq)s"), params.update(from_seq=flt.from_seq)
        cols = ", ".join(f"`{c}`" for c in COLUMNS)
        rows = self.analytics().execute(
            f"SELECT {cols} FROM {self.analytics().table(TABLE)} WHERE {' AND '.join(where)} "
            f"ORDER BY seq DESC LIMIT 1 BY seq LIMIT {int(flt.limit)}", params)
        return [_entry(r).as_dict() for r in rows]

    def _scan(self, page: int = 10_000) -> Iterator[Entry]:
        cols = ", ".join(f"`{c}`" for c in COLUMNS)
        after = 0
        while True:
            rows = self.analytics().execute(
                f"SELECT {cols} FROM {self.analytics().table(TABLE)} WHERE seq > %(after)s "
                f"ORDER BY seq, hash LIMIT {page}", {"after": after})
            if not rows:
                return
            for row in rows:
                yield _entry(row)
            after = rows[-1][0]

    def head(self) -> int:
        return self._walk(self._head()[0])[0]

    def verify(self) -> Verdict:
        shipped = self.ship_pending()
        head = self.head()
        expected, prev, count, last = 1, GENESIS, 0, None
        for entry in self._scan():
            if last is not None and entry.seq == last.seq:
                if entry.hash == last.hash and entry == last:
                    continue  # the same entry inserted twice (a retried ship): one entry
                return Verdict(count, head, shipped, Break(entry.seq, "two different entries with this number"))
            if entry.seq != expected:
                return Verdict(count, head, shipped, Break(expected, "entry missing (deleted)"))
            if entry.prev_hash != prev:
                return Verdict(count, head, shipped, Break(entry.seq, "previous-hash link broken"))
            if entry.computed_hash() != entry.hash:
                return Verdict(count, head, shipped, Break(entry.seq, "entry edited (hash does not match)"))
            prev, expected, last, count = entry.hash, expected + 1, entry, count + 1
        if count > head:
            head = self.head()  # entries written during the scan are past the head read first
        if count > head:
            return Verdict(count, head, shipped, Break(head + 1, "entry added outside the journal (beyond its head)"))
        if count < head:
            return Verdict(count, head, shipped, Break(count + 1, f"entry missing (deleted): the chain's head is {head}"))
        return Verdict(count, head, shipped, None)
