"""Accounts (tenants): create, update, list, delete, activate/deactivate, freeze/unfreeze.

An inactive account can do nothing through the API; a frozen one can read but not change
anything (its tokens still authenticate, writes are refused).
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.ids import next_id

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,62}$")
PUBLIC_FIELDS = ("id", "name", "title", "tz", "tariff", "active", "frozen", "created_at", "updated_at")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: doc.get(key) for key in PUBLIC_FIELDS}


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid("tz", f"unknown time zone {tz!r} (an IANA name such as Europe/Moscow)") from None
    if tz not in available_timezones() and tz != "UTC":
        raise Invalid("tz", f"unknown time zone {tz!r}")
    return tz


class Accounts:
    def __init__(self, control: Database):
        self.collection = control.accounts
        self.control = control

    def get(self, account_id: int) -> dict[str, Any]:
        doc = self.collection.find_one({"id": account_id})
        if doc is None:
            raise NotFound(f"account {account_id} not found")
        return doc

    def list(self, from_id: int = 0, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
        query = {"id": {"$gt": from_id}}
        docs = list(self.collection.find(query).sort("id", 1).limit(limit))
        return [public(d) for d in docs], self.collection.count_documents({})

    def save(self, *, id: int | None = None, name: str | None = None, title: str | None = None,
             tz: str | None = None, tariff: str | None = None) -> dict[str, Any]:
        """Creates an account (no id) or updates one (id given): Altcraft's accounts/save."""
        changes: dict[str, Any] = {}
        if name is not None:
            if not NAME_RE.match(name):
                raise Invalid("name", "2-63 characters: lowercase letters, digits, '_', '.', '-'")
            changes["name"] = name
        if title is not None:
            changes["title"] = title.strip()[:200]
        if tz is not None:
            changes["tz"] = check_timezone(tz)
        if tariff is not None:
            if not isinstance(tariff, str) or not 1 <= len(tariff.strip()) <= 63:
                raise Invalid("tariff", "the tariff's name, 1-63 characters")
            changes["tariff"] = tariff.strip()
        stamp = now()
        if id is None:
            if "name" not in changes:
                raise Invalid("name", "missing (required to create an account)")
            doc = {"id": next_id(self.control, "accounts"), "title": changes.get("name"),
                   "tz": "UTC", "tariff": "default", "active": True, "frozen": False,
                   "created_at": stamp, **changes, "updated_at": stamp}
            try:
                self.collection.insert_one(doc)
            except DuplicateKeyError:
                raise Conflict(f"an account named {changes['name']!r} already exists") from None
            return public(doc)
        self.get(id)
        try:
            self.collection.update_one({"id": id}, {"$set": {**changes, "updated_at": stamp}})
        except DuplicateKeyError:
            raise Conflict(f"an account named {changes.get('name')!r} already exists") from None
        return public(self.get(id))

    def set_flag(self, account_id: int, flag: str, value: bool) -> dict[str, Any]:
        assert flag in ("active", "frozen")
        result = self.collection.update_one({"id": account_id}, {"$set": {flag: value, "updated_at": now()}})
        if result.matched_count == 0:
            raise NotFound(f"account {account_id} not found")
        return public(self.get(account_id))

    def delete(self, account_id: int) -> None:
        """Removes the account, its users and tokens. Its data (the account's database) is
        dropped by the caller, which owns the connection to the account store."""
        self.get(account_id)
        self.control.users.delete_many({"account_id": account_id})
        self.control.tokens.delete_many({"account_id": account_id})
        self.collection.delete_one({"id": account_id})
