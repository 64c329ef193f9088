"""Segments: which profiles of a database a campaign goes to.

A condition is a tree of JSON objects:
  {"and": [...]} | {"or": [...]} | {"not": {...}}
  {"field": "city", "op": "eq", "value": "Kazan"}
      op: eq ne in nin gt gte lt lte between exists, and for date fields
          within_days / older_than_days (relative to now)
  {"activity": "opened" | "clicked" | "received", "campaign_id": 7 (optional: any), "days": 30}
Field conditions run in MongoDB; activity conditions in ClickHouse (events), whose answer
(a set of profile ids) joins the MongoDB query. Dynamic segments are counted on demand;
static segments store their members (collection `segment_members`, one document per segment
and profile). A static segment is filled either from its condition (materialised at creation and
again by `segments/count`) or, made as Altcraft makes one (`manual`: no condition), by adding and
removing profiles one by one (`add_member`, `remove_member`: Altcraft's profiles/segstatic/*);
a manual segment's members are never replaced by a materialisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain.clock import now
from altcraft.domain.databases import Databases, ProfileDatabase
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.fields import ALTCRAFT_FIELDS, coerce
from altcraft.domain.ids import next_id

OPS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "between", "exists",
       "within_days", "older_than_days")
ACTIVITIES = {"opened": ("open",), "clicked": ("click",), "received": ("delivered",)}
MAX_DEPTH = 10

# (account_id, kinds, campaign_id or None, since) -> profile ids; provided by the analytics side
ActivityLookup = Callable[[int, tuple[str, ...], int | None, datetime], set[str]]


class Compiler:
    def __init__(self, database: ProfileDatabase, account_id: int,
                 activity: ActivityLookup | None = None, region: str = "RU"):
        self.database = database
        self.account_id = account_id
        self.activity = activity
        self.region = region

    def compile(self, condition: Any, where: str = "condition", depth: int = 0) -> dict[str, Any]:
        if depth > MAX_DEPTH:
            raise Invalid(where, f"nested deeper than {MAX_DEPTH}")
        if condition is None or condition == {}:
            return {}
        if not isinstance(condition, dict):
            raise Invalid(where, "an object")
        if "and" in condition or "or" in condition:
            op = "and" if "and" in condition else "or"
            parts = condition[op]
            if not isinstance(parts, list) or not parts:
                raise Invalid(f"{where}.{op}", "a non-empty list of conditions")
            compiled = [self.compile(p, f"{where}.{op}[{i}]", depth + 1) for i, p in enumerate(parts)]
            return {f"${op}": compiled}
        if "not" in condition:
            return {"$nor": [self.compile(condition["not"], f"{where}.not", depth + 1)]}
        if "activity" in condition:
            return self._activity(condition, where)
        if "field" in condition:
            return self._field(condition, where)
        raise Invalid(where, "needs one of: and, or, not, field, activity")

    def _value(self, field_name: str, value: Any, where: str) -> Any:
        try:
            return coerce(self.database.fields[field_name], value, self.region)
        except Invalid as exc:
            raise Invalid(f"{where}.value", exc.reason) from None

    def _field(self, c: dict[str, Any], where: str) -> dict[str, Any]:
        name, op, value = c.get("field"), c.get("op", "eq"), c.get("value")
        name = ALTCRAFT_FIELDS.get(name, name) if isinstance(name, str) else name  # `_fname` is first_name
        if name not in self.database.fields:
            raise Invalid(f"{where}.field", f"{name!r} is not a field of database {self.database.id}")
        if op not in OPS:
            raise Invalid(f"{where}.op", f"one of: {', '.join(OPS)}")
        path = f"data.{name}"
        kind = self.database.fields[name].type
        if op == "exists":
            return {path: {"$exists": bool(value)}}
        if op in ("within_days", "older_than_days"):
            if kind not in ("date", "datetime") or not isinstance(value, int) or value < 0:
                raise Invalid(f"{where}", f"{op} needs a date field and a whole number of days")
            moment = datetime.now(timezone.utc) - timedelta(days=value)
            bound: Any = moment.date().isoformat() if kind == "date" else moment
            return {path: {"$gte" if op == "within_days" else "$lt": bound}}
        if op in ("in", "nin"):
            if not isinstance(value, list) or not value:
                raise Invalid(f"{where}.value", "a non-empty list")
            return {path: {f"${op}": [self._value(name, v, where) for v in value]}}
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise Invalid(f"{where}.value", "a list [from, to]")
            return {path: {"$gte": self._value(name, value[0], where), "$lte": self._value(name, value[1], where)}}
        return {path: {f"${op}": self._value(name, value, where)}}

    def _activity(self, c: dict[str, Any], where: str) -> dict[str, Any]:
        kind, days, campaign = c.get("activity"), c.get("days", 30), c.get("campaign_id")
        if kind not in ACTIVITIES:
            raise Invalid(f"{where}.activity", f"one of: {', '.join(ACTIVITIES)}")
        if not isinstance(days, int) or not 1 <= days <= 3650:
            raise Invalid(f"{where}.days", "a whole number of days, 1-3650")
        if campaign is not None and (not isinstance(campaign, int) or campaign <= 0):
            raise Invalid(f"{where}.campaign_id", "a positive integer")
        if self.activity is None:
            raise Invalid(where, "activity conditions need the analytics store")
        since = datetime.now(timezone.utc) - timedelta(days=days)
        ids = self.activity(self.account_id, ACTIVITIES[kind], campaign, since)
        return {"_id": {"$in": sorted(ids)}}


class Segments:
    def __init__(self, account_db: Database, account_id: int, activity: ActivityLookup | None = None,
                 region: str = "RU"):
        self.db = account_db
        self.account_id = account_id
        self.activity = activity
        self.region = region

    def _database(self, db_id: Any) -> ProfileDatabase:
        return Databases(self.db).get(db_id)

    def query(self, segment: dict[str, Any]) -> dict[str, Any]:
        if segment["kind"] == "static":
            members = [m["profile_id"] for m in self.db.segment_members.find({"segment_id": segment["id"]})]
            return {"_id": {"$in": members}}
        database = self._database(segment["db_id"])
        return Compiler(database, self.account_id, self.activity, self.region).compile(segment["condition"])

    def add(self, name: str, db_id: int, condition: Any, kind: str = "dynamic",
            manual: bool = False) -> dict[str, Any]:
        """A new segment; `manual` (static only, no condition): members are added one by one."""
        if not isinstance(name, str) or not name.strip():
            raise Invalid("name", "missing")
        if kind not in ("dynamic", "static"):
            raise Invalid("kind", "dynamic or static")
        if manual and (kind != "static" or condition):
            raise Invalid("condition", "a segment filled by hand is static and has no condition")
        database = self._database(db_id)
        Compiler(database, self.account_id, self.activity, self.region).compile(condition)  # validates
        if self.db.segments.find_one({"name": name}):
            raise Conflict(f"a segment named {name!r} exists")
        doc = {"id": next_id(self.db, "segments"), "name": name.strip(), "db_id": db_id, "kind": kind,
               "condition": condition or {}, "created_at": now(), "materialized_at": None}
        if manual:
            doc.update(manual=True, count=0)
        self.db.segments.insert_one(doc)
        if kind == "static" and not manual:
            self.materialize(doc["id"])
        return self.get(doc["id"])

    def get(self, segment_id: Any) -> dict[str, Any]:
        doc = self.db.segments.find_one({"id": segment_id}, {"_id": 0})
        if doc is None:
            raise NotFound(f"segment {segment_id} not found")
        return doc

    def list(self) -> list[dict[str, Any]]:
        return list(self.db.segments.find({}, {"_id": 0}).sort("id", 1))

    def update(self, segment_id: int, name: str | None = None, condition: Any = None) -> dict[str, Any]:
        segment = self.get(segment_id)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name.strip()
        if condition is not None:
            if segment.get("manual"):
                raise Invalid("condition", f"segment {segment_id} is filled by hand: it has no condition")
            Compiler(self._database(segment["db_id"]), self.account_id, self.activity,
                     self.region).compile(condition)
            changes["condition"] = condition
        if changes:
            self.db.segments.update_one({"id": segment_id}, {"$set": changes})
        return self.get(segment_id)

    def delete(self, segment_id: int) -> None:
        self.get(segment_id)
        self.db.segments.delete_one({"id": segment_id})
        self.db.segment_members.delete_many({"segment_id": segment_id})

    def materialize(self, segment_id: int) -> int:
        """Static segments: store the current members (replacing the previous ones); a manual
        one keeps its members and answers their number."""
        segment = self.get(segment_id)
        if segment.get("manual"):
            return self._recount(segment_id)
        database = self._database(segment["db_id"])
        query = Compiler(database, self.account_id, self.activity, self.region).compile(segment["condition"])
        ids = [d["_id"] for d in self.db[database.collection_name].find(query, {"_id": 1})]
        self.db.segment_members.delete_many({"segment_id": segment_id})
        for start in range(0, len(ids), 5000):
            self.db.segment_members.insert_many(
                [{"segment_id": segment_id, "profile_id": pid} for pid in ids[start:start + 5000]])
        self.db.segments.update_one({"id": segment_id}, {"$set": {"materialized_at": now(), "count": len(ids)}})
        return len(ids)

    def check_manual(self, segment_id: Any, db_id: Any) -> dict[str, Any]:
        """The segment, if it is a static segment of database `db_id` filled by hand."""
        segment = self.get(segment_id)
        if segment["db_id"] != db_id:
            raise Invalid("db_id", f"segment {segment_id} is a segment of database {segment['db_id']}")
        if segment["kind"] != "static":
            raise Invalid("segment_id", f"segment {segment_id} is dynamic: only a static segment has members")
        if not segment.get("manual"):
            raise Conflict(f"segment {segment_id} is filled from its condition: its members are not added by hand")
        return segment

    def _recount(self, segment_id: int) -> int:
        count = self.db.segment_members.count_documents({"segment_id": segment_id})
        self.db.segments.update_one({"id": segment_id}, {"$set": {"count": count, "materialized_at": now()}})
        return count

    def add_member(self, segment_id: Any, db_id: Any, profile_id: str) -> bool:
        """Puts a profile of the segment's database into a manual static segment (Altcraft's
        profiles/segstatic/add); False if it was a member already."""
        self.check_manual(segment_id, db_id)
        if self.db[self._database(db_id).collection_name].count_documents({"_id": profile_id}, limit=1) == 0:
            raise NotFound("profile not found")
        try:  # the _id makes a membership unique, so two concurrent adds store one
            self.db.segment_members.insert_one({"_id": f"{segment_id}:{profile_id}", "segment_id": segment_id,
                                                "profile_id": profile_id})
        except DuplicateKeyError:
            return False
        self._recount(segment_id)
        return True

    def remove_member(self, segment_id: Any, db_id: Any, profile_id: str) -> bool:
        """Takes a profile out of a manual static segment; False if it was not a member."""
        self.check_manual(segment_id, db_id)
        removed = self.db.segment_members.delete_many({"segment_id": segment_id, "profile_id": profile_id})
        self._recount(segment_id)
        return removed.deleted_count > 0

    def match(self, db_id: Any, condition: Any, sample: int = 5,
              limit: int | None = None) -> tuple[int, list[dict[str, Any]]]:
        """How many profiles of a database an unsaved condition selects, and a few of them:
        what a segment with this condition will count once saved (the panel's live count
        while the marketer builds it). With `limit` the count stops there: a count equal to
        `limit` means "at least", and the store stops reading at that match instead of
        reading the whole database. The sample is the first matches in the store's order,
        not sorted: a sort would make a store that cannot sort by an index (FerretDB) read
        every matching profile for five of them. Invalid as add() for a bad condition."""
        database = self._database(db_id)
        query = Compiler(database, self.account_id, self.activity, self.region).compile(condition)
        collection = self.db[database.collection_name]
        bounded = {"limit": limit} if limit else {}
        return collection.count_documents(query, **bounded), list(collection.find(query).limit(sample))

    def count(self, segment_id: int) -> int:
        segment = self.get(segment_id)
        database = self._database(segment["db_id"])
        return self.db[database.collection_name].count_documents(self.query(segment))

    def profiles(self, segment_id: int, after: str | None = None, batch: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """The segment's profiles in _id order, in batches, resuming after `after`.

        One sorted cursor streams them: paging with repeated queries would make FerretDB,
        which cannot use an index for these filters, scan the collection once per page.
        """
        segment = self.get(segment_id)
        database = self._database(segment["db_id"])
        collection = self.db[database.collection_name]
        query = self.query(segment)
        if after:
            query = {"$and": [query, {"_id": {"$gt": after}}]} if query else {"_id": {"$gt": after}}
        chunk: list[dict[str, Any]] = []
        for doc in collection.find(query).sort("_id", 1).batch_size(batch):
            chunk.append(doc)
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
