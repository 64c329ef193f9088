"""An in-memory stand-in for a MongoDB collection, for unit tests only: the subset the
scheduler's run book uses (a unique `_id`, equality / $lt / $in / $ne filters, $set / $inc)."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from pymongo.errors import DuplicateKeyError


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, want in query.items():
        have = doc.get(key)
        if isinstance(want, dict):
            for op, arg in want.items():
                ok = {"$lt": lambda: have is not None and have < arg,
                      "$lte": lambda: have is not None and have <= arg,
                      "$in": lambda: have in arg, "$ne": lambda: have != arg}[op]()
                if not ok:
                    return False
        elif have != want:
            return False
    return True


class FakeCollection:
    def __init__(self) -> None:
        self.docs: dict[Any, dict[str, Any]] = {}

    def insert_one(self, doc: dict[str, Any]) -> None:
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(f"E11000 duplicate key: {doc['_id']}")
        self.docs[doc["_id"]] = copy.deepcopy(doc)

    def _apply(self, doc: dict[str, Any], update: dict[str, Any]) -> None:
        for key, value in update.get("$set", {}).items():
            doc[key] = value
        for key, value in update.get("$inc", {}).items():
            doc[key] = doc.get(key, 0) + value

    def find_one_and_update(self, query, update, return_document=None):
        for doc in self.docs.values():
            if _matches(doc, query):
                self._apply(doc, update)
                return copy.deepcopy(doc)
        return None

    def update_one(self, query, update):
        for doc in self.docs.values():
            if _matches(doc, query):
                self._apply(doc, update)
                return SimpleNamespace(modified_count=1, matched_count=1)
        return SimpleNamespace(modified_count=0, matched_count=0)

    def delete_many(self, query):
        gone = [k for k, d in self.docs.items() if _matches(d, query)]
        for key in gone:
            del self.docs[key]
        return SimpleNamespace(deleted_count=len(gone))
