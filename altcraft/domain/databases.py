"""Profile databases of an account: declared fields, a unique key, one collection each.

The key is one field (email, phone or a custom field) that every profile of the database
must have and that no two profiles share; it is backed by a unique index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database

from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.fields import FIELD_NAME_RE, FIELD_TYPES, STANDARD_FIELDS, Field
from altcraft.domain.ids import next_id

NAME_RE = re.compile(r"^[\w .-]{1,100}$")


@dataclass(frozen=True)
class ProfileDatabase:
    id: int
    name: str
    key: str
    custom_fields: tuple[Field, ...] = ()
    created_at: Any = None
    fields: dict[str, Field] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        every = {n: Field(n, t) for n, t in STANDARD_FIELDS.items()}
        every.update({f.name: f for f in self.custom_fields})
        object.__setattr__(self, "fields", every)

    @property
    def collection_name(self) -> str:
        return f"profiles_{self.id}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "key": self.key,
                "fields": [f.as_dict() for f in self.custom_fields],
                "standard_fields": dict(STANDARD_FIELDS), "created_at": self.created_at}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ProfileDatabase:
        return cls(doc["id"], doc["name"], doc["key"],
                   tuple(Field(f["name"], f["type"], f.get("title", "")) for f in doc.get("fields", [])),
                   doc.get("created_at"))


def _parse_custom_fields(raw: Any) -> tuple[Field, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise Invalid("fields", "a list of {name, type, title}")
    fields: list[Field] = []
    for index, item in enumerate(raw):
        where = f"fields[{index}]"
        if not isinstance(item, dict):
            raise Invalid(where, "an object {name, type, title}")
        name, kind = item.get("name"), item.get("type")
        if not isinstance(name, str) or not FIELD_NAME_RE.match(name):
            raise Invalid(f"{where}.name", "lowercase letters, digits and '_', starting with a letter")
        if name in STANDARD_FIELDS:
            raise Invalid(f"{where}.name", f"{name!r} is a standard field")
        if kind not in FIELD_TYPES:
            raise Invalid(f"{where}.type", f"one of: {', '.join(FIELD_TYPES)}")
        if any(f.name == name for f in fields):
            raise Invalid(f"{where}.name", f"{name!r} is declared twice")
        fields.append(Field(name, kind, str(item.get("title", ""))[:200]))
    return tuple(fields)


class Databases:
    """Profile databases of one account (its own MongoDB database)."""

    def __init__(self, account_db: Database):
        self.db = account_db

    def list(self) -> list[ProfileDatabase]:
        return [ProfileDatabase.from_doc(d) for d in self.db.databases.find().sort("id", 1)]

    def get(self, db_id: Any) -> ProfileDatabase:
        if not isinstance(db_id, int) or isinstance(db_id, bool):
            raise Invalid("db_id", "missing or not an integer")
        doc = self.db.databases.find_one({"id": db_id})
        if doc is None:
            raise NotFound(f"database {db_id} not found")
        return ProfileDatabase.from_doc(doc)

    def add(self, name: str, key: str = "email", fields: Any = None) -> ProfileDatabase:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise Invalid("name", "1-100 letters, digits, spaces, '_', '.', '-'")
        custom = _parse_custom_fields(fields)
        if key not in STANDARD_FIELDS and key not in {f.name for f in custom}:
            raise Invalid("key", f"{key!r} is not a field of this database")
        if key in STANDARD_FIELDS and key not in ("email", "phone"):
            raise Invalid("key", "a key is email, phone or a custom field")
        if self.db.databases.find_one({"name": name}):
            raise Conflict(f"a database named {name!r} already exists")
        stamp = now()
        doc = {"id": next_id(self.db, "databases"), "name": name, "key": key,
               "fields": [f.as_dict() for f in custom], "created_at": stamp}
        database = ProfileDatabase.from_doc(doc)
        # the unique key index exists before the database is visible
        self.db[database.collection_name].create_index(
            [(f"data.{key}", 1)], unique=True, name=f"key_{key}_uniq")
        self.db.databases.insert_one(doc)
        return database

    def update(self, db_id: int, name: str | None = None, fields: Any = None) -> ProfileDatabase:
        """Renames, or adds custom fields. Fields are never removed or retyped here: stored
        values would silently stop matching their declaration."""
        current = self.get(db_id)
        changes: dict[str, Any] = {}
        if name is not None and name != current.name:
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise Invalid("name", "1-100 letters, digits, spaces, '_', '.', '-'")
            if self.db.databases.find_one({"name": name, "id": {"$ne": db_id}}):
                raise Conflict(f"a database named {name!r} already exists")
            changes["name"] = name
        if fields is not None:
            new = _parse_custom_fields(fields)
            old = {f.name: f for f in current.custom_fields}
            for f in new:
                if f.name in old and old[f.name].type != f.type:
                    raise Invalid("fields", f"{f.name!r} is {old[f.name].type}; a type cannot change")
            merged = list(current.custom_fields) + [f for f in new if f.name not in old]
            changes["fields"] = [f.as_dict() for f in merged]
        if changes:
            self.db.databases.update_one({"id": db_id}, {"$set": changes})
        return self.get(db_id)

    def delete(self, db_id: int) -> None:
        database = self.get(db_id)
        self.db.databases.delete_one({"id": db_id})
        self.db.drop_collection(database.collection_name)
