"""Account users: login, password (argon2), roles, language, master flag."""

from __future__ import annotations

import re
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.ids import next_id
from altcraft.domain.passwords import PasswordPolicy, hash_password, verify_password

LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{2,99}$")
ROLES = ("admin", "manager", "analyst", "editor", "viewer")
LANGS = ("en", "ru")
# Roles that may change an account's data; the others (analyst, viewer) only read.
CHANGING_ROLES = frozenset({"admin", "manager", "editor"})
PUBLIC_FIELDS = ("id", "account_id", "login", "name", "email", "roles", "lang", "master",
                 "active", "created_at", "updated_at")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: doc.get(key) for key in PUBLIC_FIELDS}


def can_change(user: dict[str, Any], account: dict[str, Any]) -> bool:
    """Whether this user may change its account's data: a changing role (or the master flag),
    and an account that is not frozen (a frozen account reads but does not change)."""
    if account.get("frozen"):
        return False
    return bool(user.get("master")) or bool(CHANGING_ROLES.intersection(user.get("roles") or ()))


# verified against when a login does not exist, so that an unknown login costs as much time
# as a wrong password and the answer time does not tell which logins exist
_ABSENT_HASH = hash_password("absent-user-placeholder-password")


class Users:
    def __init__(self, control: Database, policy: PasswordPolicy):
        self.control = control
        self.collection = control.users
        self.policy = policy

    def _validate(self, data: dict[str, Any], login: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "roles" in data and data["roles"] is not None:
            roles = data["roles"]
            if not isinstance(roles, list) or not all(r in ROLES for r in roles):
                raise Invalid("roles", f"a list of: {', '.join(ROLES)}")
            out["roles"] = sorted(set(roles))
        if data.get("lang") is not None:
            if data["lang"] not in LANGS:
                raise Invalid("lang", f"one of: {', '.join(LANGS)}")
            out["lang"] = data["lang"]
        for flag in ("master", "active"):
            if data.get(flag) is not None:
                out[flag] = bool(data[flag])
        for text in ("name", "email"):
            if data.get(text) is not None:
                out[text] = str(data[text]).strip()[:200]
        if data.get("password") is not None:
            out["password_hash"] = hash_password(self.policy.check(data["password"], login))
        return out

    def add(self, account_id: int, login: str, password: str, **data: Any) -> dict[str, Any]:
        if not isinstance(login, str) or not LOGIN_RE.match(login):
            raise Invalid("login", "3-100 characters: letters, digits, '_', '.', '@', '+', '-'")
        if password is None:
            raise Invalid("password", "missing (required)")
        fields = self._validate({**data, "password": password}, login)
        stamp = now()
        doc = {"id": next_id(self.control, "users"), "account_id": account_id, "login": login,
               "roles": ["viewer"], "lang": "en", "master": False, "active": True,
               "name": "", "email": "", **fields, "created_at": stamp, "updated_at": stamp}
        try:
            self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"login {login!r} is taken") from None
        return public(doc)

    def get(self, user_id: int, account_id: int | None = None) -> dict[str, Any]:
        query: dict[str, Any] = {"id": user_id}
        if account_id is not None:
            query["account_id"] = account_id
        doc = self.collection.find_one(query)
        if doc is None:
            raise NotFound(f"user {user_id} not found")
        return doc

    def verify(self, login: str, password: str) -> dict[str, Any] | None:
        """The active user with this login and password, or None."""
        doc = self.collection.find_one({"login": login}) if isinstance(login, str) else None
        ok = verify_password(doc["password_hash"] if doc else _ABSENT_HASH, password or "")
        if doc is None or not ok or not doc.get("active", True):
            return None
        return doc

    def update(self, user_id: int, **data: Any) -> dict[str, Any]:
        current = self.get(user_id)
        fields = self._validate(data, current["login"])
        self.collection.update_one({"id": user_id}, {"$set": {**fields, "updated_at": now()}})
        return public(self.get(user_id))

    def delete(self, user_id: int) -> None:
        self.get(user_id)
        self.control.tokens.delete_many({"user_id": user_id})
        self.collection.delete_one({"id": user_id})

    def list(self, account_id: int, active: bool | None = None, master: bool | None = None,
             lang: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"account_id": account_id}
        for key, value in (("active", active), ("master", master), ("lang", lang)):
            if value is not None:
                query[key] = value
        return [public(d) for d in self.collection.find(query).sort("id", 1)]
