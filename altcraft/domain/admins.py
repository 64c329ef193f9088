"""Platform administrators (the admin panel and the admin API)."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from altcraft.domain.clock import now
from altcraft.domain.errors import Invalid
from altcraft.domain.ids import next_id
from altcraft.domain.passwords import PasswordPolicy, hash_password


class Admins:
    def __init__(self, control: Database, policy: PasswordPolicy):
        self.control = control
        self.collection = control.admins
        self.policy = policy

    def ensure(self, login: str, password: str) -> tuple[dict[str, Any], bool]:
        """Creates the admin if missing; never changes an existing one. Returns (admin, created)."""
        if not login:
            raise Invalid("login", "missing (required)")
        existing = self.collection.find_one({"login": login})
        if existing is not None:
            return {"id": existing["id"], "login": login}, False
        self.policy.check(password, login)
        doc = {"id": next_id(self.control, "admins"), "login": login,
               "password_hash": hash_password(password), "created_at": now()}
        self.collection.insert_one(doc)
        return {"id": doc["id"], "login": login}, True
