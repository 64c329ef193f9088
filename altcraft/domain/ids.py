"""Integer ids, as Altcraft's API uses them, from a counter per kind."""

from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.database import Database


def next_id(db: Database, kind: str) -> int:
    counter = db.counters.find_one_and_update(
        {"_id": kind}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER,
    )
    return int(counter["seq"])
