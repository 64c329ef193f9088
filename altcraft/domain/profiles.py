"""Profiles of one profile database: add, get, update, delete, and the batch upsert that
imports are built on.

Every value is validated and normalised before anything is written, so a bad profile is
refused whole and never half-written. Enrichment fills gender from the first name (SexDB)
and city/country from the IP (GeoDB) where they were not given.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure

from altcraft.bundled.geodb import GeoDB
from altcraft.bundled.sexdb import SexDB
from altcraft.domain.clock import now
from altcraft.domain.databases import ProfileDatabase
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.fields import ALTCRAFT_FIELDS, coerce, from_altcraft
from altcraft.domain.subscriptions import CHANNELS, STATUSES, change
from altcraft.stores.documents import insert_new

Outcome = Literal["inserted", "updated", "unchanged"]
SubscriptionOutcome = Literal["changed", "unchanged", "stale", "no-profile"]
_RETRIES = 8  # optimistic writes of a profile's subscriptions before giving up (Conflict)


@dataclass
class Enricher:
    sexdb: SexDB | None = None
    geodb: GeoDB | None = None
    phone_region: str = "RU"

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        # the row's own fields are looked at first: a GeoDB's truth is its size, summed per call
        if data.get("first_name") and not data.get("gender") and self.sexdb:
            gender = self.sexdb.gender(data["first_name"])
            if gender:
                data["gender"] = gender
        if data.get("ip") and not (data.get("city") or data.get("country")) and self.geodb:
            location = self.geodb.lookup(data["ip"])
            if location:
                data["city"], data["country"] = location.city, location.country
        return data


# Altcraft's `matching` modes served here; the ones keyed on subscriptions' contacts come later
MATCHING = ("email", "phone", "profile_id", "custom")
MATCHING_LATER = ("email_profile", "email_sub", "phone_sub", "push_sub", "custom_sub", "email_phone",
                  "email_phone_sub")


def public(doc: dict[str, Any], db_id: int) -> dict[str, Any]:
    return {"id": doc["_id"], "db_id": db_id, "data": doc.get("data", {}),
            "subscriptions": doc.get("subscriptions", []),
            "created_at": doc.get("created_at"), "updated_at": doc.get("updated_at")}


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)  # version and variant bits
_UUID4_SET = (4 << 76) | (0x8000 << 48)  # version 4, variant RFC 4122


def new_ids(count: int) -> list[str]:
    """`count` profile ids in uuid.uuid4().hex's form (random, version 4), from one read of
    the system's random source: uuid4() row by row cost an import more than reading its CSV."""
    raw, from_bytes = os.urandom(16 * count), int.from_bytes
    return ["%032x" % ((from_bytes(raw[i:i + 16], "big") & _UUID4_CLEAR) | _UUID4_SET)
            for i in range(0, 16 * count, 16)]


def _subscriptions(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise Invalid("subscriptions", "a list of {resource_id, channel, status}")
    stamp, out, seen = now(), [], set()
    for index, item in enumerate(raw):
        where = f"subscriptions[{index}]"
        if not isinstance(item, dict):
            raise Invalid(where, "an object {resource_id, channel, status}")
        resource, channel = item.get("resource_id"), item.get("channel", "email")
        status = item.get("status", "subscribed")
        if not isinstance(resource, int) or isinstance(resource, bool) or resource <= 0:
            raise Invalid(f"{where}.resource_id", "a positive integer")
        if channel not in CHANNELS:
            raise Invalid(f"{where}.channel", f"one of: {', '.join(CHANNELS)}")
        if status not in STATUSES:
            raise Invalid(f"{where}.status", f"one of: {', '.join(STATUSES)}")
        if (resource, channel) in seen:
            raise Invalid(where, f"resource {resource} channel {channel} given twice")
        seen.add((resource, channel))
        out.append({"resource_id": resource, "channel": channel, "status": status, "changed_at": stamp})
    return out


def _duplicate(exc: OperationFailure) -> bool:
    """A unique index refused a write: MongoDB says so with DuplicateKeyError; FerretDB (the
    stand-in) answers an update that way with a generic error naming the constraint."""
    return isinstance(exc, DuplicateKeyError) or "UNIQUE constraint failed" in str(exc)


class Profiles:
    def __init__(self, account_db: Database, database: ProfileDatabase,
                 enricher: Enricher | None = None, lookup: Literal["index", "scan"] = "index"):
        self.database = database
        self.lookup = lookup
        self.collection: Collection = account_db[database.collection_name]
        self.enricher = enricher or Enricher()

    # -- validation --------------------------------------------------------------------
    def prepare(self, data: Any, *, require_key: bool) -> dict[str, Any]:
        """Validated, normalised, enriched field values; raises Invalid on the first bad one."""
        if not isinstance(data, dict):
            raise Invalid("data", "an object of field values")
        data = from_altcraft(data)  # Altcraft's system field names (`_fname`...) are ours stored
        clean: dict[str, Any] = {}
        fields, region = self.database.fields, self.enricher.phone_region
        for name, raw in data.items():
            definition = fields.get(name)
            if definition is None:
                raise Invalid(name, f"not a field of database {self.database.id}")
            value = coerce(definition, raw, region)
            if value is not None:
                clean[name] = value
        key = self.database.key
        if require_key and key not in clean:
            raise Invalid(key, "missing: it is the database's key")
        return self.enricher.apply(clean)

    def _find_query(self, profile_id: Any = None, key_value: Any = None) -> dict[str, Any]:
        if profile_id is not None:
            if not isinstance(profile_id, str):
                raise Invalid("profile_id", "a profile id string")
            return {"_id": profile_id}
        if key_value is not None:
            key = self.database.key
            return {f"data.{key}": coerce(self.database.fields[key], key_value, self.enricher.phone_region)}
        raise Invalid("profile_id", f"missing: give profile_id or the key field {self.database.key!r}")

    def match(self, matching: str | None = None, *, email: Any = None, phone: Any = None,
              profile_id: Any = None, field_name: str | None = None, field_value: Any = None,
              key_value: Any = None) -> str:
        """The id of the one profile Altcraft's `matching` names (MATCHING: email, phone,
        profile_id, custom with field_name + field_value); NotFound when none, Conflict (409,
        as Altcraft answers) when more than one profile has the value.

        Without `matching`, the first lookup given wins: profile_id, email, phone, key_value.
        """
        if matching is None:
            matching = next((mode for mode, value in (("profile_id", profile_id), ("email", email),
                                                     ("phone", phone), ("key", key_value))
                             if value is not None), "email")
        if matching in MATCHING_LATER:
            raise Invalid("matching", f"{matching!r} is not served yet: one of {', '.join(MATCHING)}")
        if matching not in MATCHING and matching != "key":
            raise Invalid("matching", f"one of {', '.join(MATCHING)}")
        if matching == "profile_id":
            if profile_id is None:
                raise Invalid("profile_id", "missing: matching is profile_id")
            return self.get(profile_id=profile_id)["id"]
        if matching == "custom":
            if field_name is None or field_value is None:
                raise Invalid("field_name" if field_name is None else "field_value", "missing: matching is custom")
            name, value, where = ALTCRAFT_FIELDS.get(field_name, field_name), field_value, "field_value"
        elif matching == "key":
            name, value, where = self.database.key, key_value, "key_value"
        else:
            name, value, where = matching, email if matching == "email" else phone, matching
            if value is None:
                raise Invalid(matching, f"missing: matching is {matching}")
        definition = self.database.fields.get(name)
        if definition is None:
            raise Invalid("field_name" if matching == "custom" else where,
                          f"{name!r} is not a field of database {self.database.id}")
        try:
            wanted = coerce(definition, value, self.enricher.phone_region)
        except Invalid as exc:
            raise Invalid(where, exc.reason) from None
        found = list(self.collection.find({f"data.{name}": wanted}, {"_id": 1}).limit(2))
        if not found:
            raise NotFound("profile not found")
        if len(found) > 1:
            raise Conflict(f"more than one profile has {name} {value!r}: match by profile_id")
        return found[0]["_id"]

    # -- single profiles ---------------------------------------------------------------
    def add(self, data: Any, subscriptions: Any = None) -> dict[str, Any]:
        clean = self.prepare(data, require_key=True)
        stamp = now()
        doc = {"_id": uuid.uuid4().hex, "data": clean, "subscriptions": _subscriptions(subscriptions),
               "created_at": stamp, "updated_at": stamp}
        try:
            self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"a profile with {self.database.key} {clean[self.database.key]!r} exists") from None
        return public(doc, self.database.id)

    def get(self, profile_id: Any = None, key_value: Any = None) -> dict[str, Any]:
        doc = self.collection.find_one(self._find_query(profile_id, key_value))
        if doc is None:
            raise NotFound("profile not found")
        return public(doc, self.database.id)

    def update(self, data: Any, profile_id: Any = None, key_value: Any = None,
               subscriptions: Any = None) -> dict[str, Any]:
        """Field values given are set, others kept. Each subscription given is set as of now
        by the ordering rule (domain/subscriptions.py); subscriptions not given are kept."""
        query = self._find_query(profile_id, key_value)
        clean = self.prepare(data if data is not None else {}, require_key=False)
        changes: dict[str, Any] = {f"data.{k}": v for k, v in clean.items()}
        wanted = _subscriptions(subscriptions)
        if wanted:
            return self._update_with_subscriptions(query, changes, wanted)
        if not changes:
            return self.get(profile_id, key_value)
        try:
            result = self.collection.update_one(query, {"$set": {**changes, "updated_at": now()}})
        except (DuplicateKeyError, OperationFailure) as exc:
            if not _duplicate(exc):
                raise
            raise Conflict(f"another profile has this {self.database.key}") from None
        if result.matched_count == 0:
            raise NotFound("profile not found")
        return self.get(**({"profile_id": profile_id} if profile_id else {"key_value": clean.get(
            self.database.key, key_value)}))

    def page(self, after: str | None = None, limit: int = 50,
             email_prefix: str | None = None, phone_prefix: str | None = None,
             key_value: Any = None, status: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of profiles in id order, starting after the id `after` (keyset paging:
        the cost of a page does not grow with its depth), optionally only those whose e-mail
        starts with `email_prefix` (lowercased: e-mails are stored normalised), whose phone
        starts with the digits of `phone_prefix` (phones are stored as +<digits>), whose key
        is `key_value` (normalised as the key field is; Invalid naming the key if it cannot
        be one), or with a subscription in `status`. Returns the page and the id to continue
        after, or None on the last page."""
        if not 1 <= limit <= 500:
            raise Invalid("limit", "1-500")
        query: dict[str, Any] = {}
        if after:
            if not isinstance(after, str):
                raise Invalid("after", "a profile id string")
            query["_id"] = {"$gt": after}
        if email_prefix:
            query["data.email"] = {"$regex": "^" + re.escape(email_prefix.strip().lower())}
        if phone_prefix:
            digits = re.sub(r"\D", "", phone_prefix)
            if not digits:
                raise Invalid("phone", "digits of the phone's beginning, in international form")
            query["data.phone"] = {"$regex": "^\\+" + digits}
        if key_value is not None and str(key_value).strip():
            key = self.database.key
            query[f"data.{key}"] = coerce(self.database.fields[key], key_value, self.enricher.phone_region)
        if status:
            if status not in STATUSES:
                raise Invalid("status", f"one of: {', '.join(STATUSES)}")
            query["subscriptions.status"] = status
        docs = list(self.collection.find(query).sort("_id", 1).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return [public(d, self.database.id) for d in docs], (docs[-1]["_id"] if more else None)

    def _update_with_subscriptions(self, query: dict[str, Any], changes: dict[str, Any],
                                   wanted: list[dict[str, Any]]) -> dict[str, Any]:
        for _ in range(_RETRIES):
            doc = self.collection.find_one(query, {"subscriptions": 1, "updated_at": 1})
            if doc is None:
                raise NotFound("profile not found")
            stored = doc.get("subscriptions") or []
            for index, item in enumerate(wanted):
                decided = change(stored, item["resource_id"], item["channel"], item["status"], item["changed_at"])
                if decided.outcome == "stale" and (decided.current or {}).get("status") == "hard_bounced":
                    raise Conflict(f"subscriptions[{index}]: resource {item['resource_id']} channel "
                                   f"{item['channel']} is hard_bounced; a hard bounce is not lifted")
                if decided.subscriptions is not None:
                    stored = decided.subscriptions
            try:
                result = self.collection.update_one(
                    {"_id": doc["_id"], "updated_at": doc.get("updated_at")},
                    {"$set": {**changes, "subscriptions": stored, "updated_at": now()}})
            except (DuplicateKeyError, OperationFailure) as exc:
                if not _duplicate(exc):
                    raise
                raise Conflict(f"another profile has this {self.database.key}") from None
            if result.matched_count:
                return self.get(profile_id=doc["_id"])
        raise Conflict("the profile kept changing; not updated")

    def delete(self, profile_id: Any = None, key_value: Any = None) -> None:
        if self.collection.delete_one(self._find_query(profile_id, key_value)).deleted_count == 0:
            raise NotFound("profile not found")

    def set_subscription(self, profile_id: str, resource_id: int, channel: str, status: str,
                         at: datetime | None = None) -> SubscriptionOutcome:
        """Sets one subscription's status as of `at` (default: now) by the ordering rule of
        domain/subscriptions.py: the one writer of a single subscription, used by the tracking
        pages, the event effects (procactions) and the tools.

        Optimistic concurrency on the document's `updated_at`: two writers never lose each
        other's change to another subscription of the same profile.
        """
        if status not in STATUSES:
            raise Invalid("status", f"one of: {', '.join(STATUSES)}")
        if channel not in CHANNELS:
            raise Invalid("channel", f"one of: {', '.join(CHANNELS)}")
        # Mongo keeps milliseconds: compare what will be stored with what is stored
        at = now() if at is None else at.replace(microsecond=at.microsecond // 1000 * 1000)
        for _ in range(_RETRIES):
            doc = self.collection.find_one({"_id": profile_id}, {"subscriptions": 1, "updated_at": 1})
            if doc is None:
                return "no-profile"
            decided = change(doc.get("subscriptions") or [], resource_id, channel, status, at)
            if decided.subscriptions is None:
                return decided.outcome
            result = self.collection.update_one(
                {"_id": profile_id, "updated_at": doc.get("updated_at")},
                {"$set": {"subscriptions": decided.subscriptions, "updated_at": now()}})
            if result.matched_count:
                return decided.outcome
        raise Conflict(f"profile {profile_id} kept changing; subscription not set")

    # -- batches (import) ----------------------------------------------------------------
    @property
    def preferred_batch(self) -> int:
        """Rows per upsert_prepared call: large where resolving existing keys means a scan."""
        return 50_000 if self.lookup == "scan" else 5_000

    def _existing(self, keys: list[Any]) -> dict[Any, dict[str, Any]]:
        """Stored profiles for these key values: key -> {_id, data}."""
        key = self.database.key
        path = f"data.{key}"
        if self.lookup == "scan":
            wanted = set(keys)
            found = {}
            for doc in self.collection.find({}, {"data": 1}):
                value = doc.get("data", {}).get(key)
                if value in wanted:
                    found[value] = doc
            return found
        found = {}
        for start in range(0, len(keys), 1000):
            for doc in self.collection.find({path: {"$in": keys[start:start + 1000]}}, {"data": 1}):
                found[doc["data"][key]] = doc
        return found

    def ids_by_key(self, keys: list[Any]) -> dict[Any, str]:
        """The ids of the stored profiles with these (prepared) key values: key -> id."""
        return {value: doc["_id"] for value, doc in self._existing(list(keys)).items()}

    def upsert_prepared(self, rows: Sequence[dict[str, Any]],
                        subscribe: tuple[int, str] | None = None) -> list[Outcome]:
        """Upserts already prepared rows (each with the key, keys unique among the rows).

        New profiles are inserted optimistically, so a fresh import needs no lookups; the rows
        whose key exists are then compared with what is stored. Fields not given keep their
        stored value, and a row that changes nothing is not written: importing the same file
        again changes nothing.
        """
        key = self.database.key
        stamp = now()
        outcomes: list[Outcome] = ["inserted"] * len(rows)
        # new profiles may be subscribed on the way in; existing ones keep their status
        initial = [{"resource_id": subscribe[0], "channel": subscribe[1], "status": "subscribed",
                    "changed_at": stamp}] if subscribe else []
        docs = [{"_id": profile_id, "data": row, "subscriptions": list(initial),
                 "created_at": stamp, "updated_at": stamp} for profile_id, row in zip(new_ids(len(rows)), rows)]
        taken = sorted(insert_new(self.collection, docs))
        if not taken:
            return outcomes
        existing = self._existing([rows[i][key] for i in taken])
        updates: list[UpdateOne] = []
        retry: list[int] = []
        for index in taken:
            row, current = rows[index], existing.get(rows[index][key])
            if current is None:  # deleted between the insert and the lookup: insert again
                retry.append(index)
                continue
            changed = {f"data.{k}": v for k, v in row.items() if current["data"].get(k) != v}
            if changed:
                updates.append(UpdateOne({"_id": current["_id"]}, {"$set": {**changed, "updated_at": stamp}}))
                outcomes[index] = "updated"
            else:
                outcomes[index] = "unchanged"
        if updates:
            self.collection.bulk_write(updates, ordered=False)
        for index, outcome in zip(retry, self.upsert_prepared([rows[i] for i in retry], subscribe)):
            outcomes[index] = outcome
        return outcomes
