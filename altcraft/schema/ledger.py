"""The ledger of versioned migrations: one document per (store, version) applied, in the
control database.

Desired state (mongodb.py, clickhouse.py, rabbitmq.py) creates what is missing; what it
cannot express - a backfill, a rename - is a numbered migration (migrations.py), applied
once and recorded here. A store's schema version is the highest version applied to it.

Two runs at once (two hosts, or an upgrade and a restore) must not both apply one
migration: a run *claims* a migration by inserting its document, and a unique index on
(store, version) lets exactly one insert win. The winner applies it and marks it applied;
the loser waits for that. A claim carries a lease: a run killed while applying leaves a
claim whose lease runs out, and the next run takes it over (migrations are idempotent, so
applying one again after a half-done attempt is safe). A run whose migration fails drops
its claim, so the next run tries again.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Literal

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

COLLECTION = "schema_migrations"
INDEX_NAME = "store_1_version_1_uniq"
APPLIED, RUNNING = "applied", "running"
Claim = Literal["claimed", "applied", "busy"]


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Record:
    store: str
    version: int
    name: str
    applied_at: str
    platform_version: str

    def as_dict(self) -> dict[str, Any]:
        return {"store": self.store, "version": self.version, "name": self.name,
                "applied_at": self.applied_at, "platform_version": self.platform_version}


class Ledger:
    def __init__(self, control: Database, clock=time.time):
        self.collection = control[COLLECTION]
        self.clock = clock

    def ensure_index(self) -> None:
        """The unique index that makes a claim exclusive; created before any claim."""
        self.collection.create_index([("store", 1), ("version", 1)], name=INDEX_NAME, unique=True)

    # -- reading ----------------------------------------------------------------------------
    def applied(self) -> list[Record]:
        docs = self.collection.find({"state": APPLIED})
        return sorted((Record(d["store"], d["version"], d["name"], d["applied_at"], d["platform_version"])
                       for d in docs), key=lambda r: (r.store, r.version))

    def versions(self) -> dict[str, int]:
        """The schema version of each store: the highest version applied to it."""
        versions: dict[str, int] = {}
        for record in self.applied():
            versions[record.store] = max(versions.get(record.store, 0), record.version)
        return versions

    def is_applied(self, store: str, version: int) -> bool:
        return self.collection.find_one({"store": store, "version": version, "state": APPLIED}) is not None

    # -- claiming ---------------------------------------------------------------------------
    def claim(self, store: str, version: int, name: str, owner: str, lease: float,
              platform_version: str) -> Claim:
        """`claimed`: this run applies it now; `applied`: done already; `busy`: another
        live run holds it (wait, then ask again)."""
        now = self.clock()
        try:
            self.collection.insert_one({
                "store": store, "version": version, "name": name, "state": RUNNING, "owner": owner,
                "until": now + lease, "claimed_at": _utc(now), "platform_version": platform_version})
            return "claimed"
        except DuplicateKeyError:
            pass
        doc = self.collection.find_one({"store": store, "version": version})
        if doc is None:  # dropped by a failed run between our insert and this read
            return "busy"
        if doc["state"] == APPLIED:
            return "applied"
        if doc.get("until", 0) > now:
            return "busy"
        # the holder died (its lease ran out): take the claim over, if nobody else did first
        taken = self.collection.update_one(
            {"_id": doc["_id"], "state": RUNNING, "owner": doc["owner"], "until": doc["until"]},
            {"$set": {"owner": owner, "until": now + lease, "claimed_at": _utc(now),
                      "platform_version": platform_version}})
        return "claimed" if taken.modified_count == 1 else "busy"

    def renew(self, store: str, version: int, owner: str, lease: float) -> None:
        self.collection.update_one({"store": store, "version": version, "owner": owner, "state": RUNNING},
                                   {"$set": {"until": self.clock() + lease}})

    def complete(self, store: str, version: int, owner: str) -> None:
        done = self.collection.update_one(
            {"store": store, "version": version, "owner": owner, "state": RUNNING},
            {"$set": {"state": APPLIED, "applied_at": _utc(self.clock())}, "$unset": {"until": ""}})
        if done.modified_count != 1:
            raise RuntimeError(f"migration {store} {version}: the claim of {owner} was taken over "
                               "before it completed (its lease ran out); run migrate again")

    def release(self, store: str, version: int, owner: str) -> None:
        """Drops a claim whose migration failed, so that the next run applies it again."""
        self.collection.delete_one({"store": store, "version": version, "owner": owner, "state": RUNNING})
