"""API tokens: admin scope or account scope, stored only as a SHA-256 hash, revocable.

A token is 256 random bits shown once at creation; a hash of that much entropy cannot be
reversed, so a leaked control database gives no usable token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pymongo.database import Database

from altcraft.domain.clock import now
from altcraft.domain.errors import AccountInactive, NotFound, Unauthorized
from altcraft.domain.ids import next_id

Scope = Literal["admin", "account"]


@dataclass(frozen=True)
class Principal:
    scope: Scope
    token_id: int
    account_id: int | None = None
    user_id: int | None = None
    read_only: bool = False  # a frozen account reads but does not change


PREFIX_CHARS = 8  # kept in clear so that an operator can tell tokens apart; 48 of 256 bits


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, control: Database):
        self.control = control
        self.collection = control.tokens

    def create(self, scope: Scope, account_id: int | None = None, user_id: int | None = None,
               name: str = "") -> tuple[str, dict[str, Any]]:
        if scope == "account":
            if account_id is None or self.control.accounts.find_one({"id": account_id}) is None:
                raise NotFound(f"account {account_id} not found")
            if user_id is not None and self.control.users.find_one(
                    {"id": user_id, "account_id": account_id}) is None:
                raise NotFound(f"user {user_id} not found in account {account_id}")
        token = secrets.token_urlsafe(32)
        doc = {"id": next_id(self.control, "tokens"), "token_hash": _digest(token), "prefix": token[:PREFIX_CHARS],
               "scope": scope,
               "account_id": account_id if scope == "account" else None, "user_id": user_id,
               "name": name, "revoked": False, "created_at": now()}
        self.collection.insert_one(doc)
        return token, {k: doc[k] for k in ("id", "prefix", "scope", "account_id", "user_id", "name", "created_at")}

    def list(self, prefix: str = "", limit: int = 100) -> list[dict[str, Any]]:
        """Tokens whose first characters are `prefix`, newest first, without their hash."""
        query: dict[str, Any] = {}
        if prefix:
            query["prefix"] = {"$regex": "^" + re.escape(prefix[:PREFIX_CHARS])}
        return list(self.collection.find(query, {"_id": 0, "token_hash": 0}).sort("id", -1).limit(limit))

    def get(self, token_id: int) -> dict[str, Any]:
        doc = self.collection.find_one({"id": token_id}, {"_id": 0, "token_hash": 0})
        if doc is None:
            raise NotFound(f"token {token_id} not found")
        return doc

    def revoke(self, token_id: int) -> None:
        if self.collection.update_one({"id": token_id}, {"$set": {"revoked": True}}).matched_count == 0:
            raise NotFound(f"token {token_id} not found")

    def authenticate(self, token: object) -> Principal:
        if not isinstance(token, str) or not token:
            raise Unauthorized("token: missing")
        doc = self.collection.find_one({"token_hash": _digest(token)})
        if doc is None or doc.get("revoked"):
            raise Unauthorized("token: invalid or revoked")
        if doc["scope"] == "admin":
            return Principal("admin", doc["id"])
        account = self.control.accounts.find_one({"id": doc["account_id"]})
        if account is None:
            raise Unauthorized("token: its account no longer exists")
        if not account.get("active", True):
            raise AccountInactive(f"account {account['id']} is deactivated")
        if doc.get("user_id") is not None:
            user = self.control.users.find_one({"id": doc["user_id"]})
            if user is None or not user.get("active", True):
                raise Unauthorized("token: its user is deleted or deactivated")
        return Principal("account", doc["id"], doc["account_id"], doc.get("user_id"),
                         read_only=bool(account.get("frozen")))
