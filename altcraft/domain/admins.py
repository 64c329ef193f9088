"""Platform administrators (the admin panel and the admin API): accounts of their own
(collection `admins`), argon2 password hashes, an optional TOTP second factor, a role.

Two sources. A local administrator has a password hash here. A directory administrator
(`source: "ldap"`) has none: its record is made or updated by `from_directory` each time the
directory vouches for it (domain/admin_signin.py), carrying its entry's DN and the role its
groups map to; `deactivate` marks it inactive when the directory no longer does, which ends its
sessions. Neither kind ever signs in as the other: a local login is never looked up in the
directory, and a directory record has no password to check here.

TOTP: `begin_totp` keeps a new secret as pending; `confirm_totp` makes it the admin's once a
code of it is typed (so a mistyped enrolment never locks anyone out). `check_totp` accepts a
code once. Two guards: the first use of a (admin, time step) is claimed by inserting
`totp_uses._id = "<admin>:<step>"`, so of two requests carrying the same code at the same
moment exactly one wins (a unique key is atomic on MongoDB and on FerretDB alike, where a
conditional update is not); the admin's `totp_step` then only moves forward, so an older
code of the drift window is refused afterwards.
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from altcraft.domain import totp
from altcraft.domain.clock import now
from altcraft.domain.errors import Conflict, Invalid, NotFound
from altcraft.domain.ids import next_id
from altcraft.domain.passwords import PasswordPolicy, hash_password, verify_password

_ABSENT_HASH = hash_password("absent-admin-placeholder-password")
ROLES = ("admin", "viewer")  # viewer: sees every page, changes nothing
DIRECTORY = "ldap"


def can_change(admin: dict[str, Any]) -> bool:
    return admin.get("role", "admin") != "viewer"


def is_directory(admin: dict[str, Any]) -> bool:
    return admin.get("source") == DIRECTORY


class Admins:
    def __init__(self, control: Database, policy: PasswordPolicy):
        self.control = control
        self.collection = control.admins
        self.totp_uses = control.totp_uses
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

    def get(self, admin_id: int) -> dict[str, Any]:
        doc = self.collection.find_one({"id": admin_id})
        if doc is None:
            raise NotFound(f"admin {admin_id} not found")
        return doc

    def find(self, login: str) -> dict[str, Any] | None:
        return self.collection.find_one({"login": login}) if isinstance(login, str) else None

    def verify(self, login: str, password: str) -> dict[str, Any] | None:
        """The local admin with this login and password, or None (the same work either way;
        a directory administrator has no password here)."""
        doc = self.find(login)
        hashed = doc.get("password_hash") if doc else None
        ok = verify_password(hashed or _ABSENT_HASH, password or "")
        return doc if doc is not None and hashed and ok and doc.get("active", True) else None

    def from_directory(self, login: str, dn: str, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The directory administrator `login` as the directory describes it now, made on its
        first sign-in. Returns (admin, what changed: {} when nothing did). Raises Conflict when
        the login belongs to a local administrator."""
        if role not in ROLES:
            raise Invalid("role", f"not one of {', '.join(ROLES)}")
        current = self.find(login)
        if current is not None and not is_directory(current):
            raise Conflict(f"admin {login!r} is a local administrator")
        wanted = {"dn": dn, "role": role, "active": True}
        if current is None:
            doc = {"id": next_id(self.control, "admins"), "login": login, "source": DIRECTORY,
                   **wanted, "created_at": now()}
            try:
                self.collection.insert_one(doc)
            except DuplicateKeyError:  # a parallel first sign-in made it: update that one
                return self.from_directory(login, dn, role)
            return doc, {"source": DIRECTORY, **wanted}
        changes = {k: v for k, v in wanted.items() if current.get(k) != v}
        if not changes:
            return current, {}
        updated = self.collection.find_one_and_update(
            {"id": current["id"], "source": DIRECTORY}, {"$set": {**changes, "updated_at": now()}},
            return_document=ReturnDocument.AFTER)
        return updated, changes

    def deactivate(self, admin_id: int) -> bool:
        """Marks a directory administrator inactive (its sessions end); True when it changed."""
        result = self.collection.update_one({"id": admin_id, "source": DIRECTORY, "active": {"$ne": False}},
                                            {"$set": {"active": False, "updated_at": now()}})
        return result.modified_count == 1

    def set_password(self, admin_id: int, password: str) -> dict[str, Any]:
        current = self.get(admin_id)
        if is_directory(current):
            raise Invalid("password", "this administrator's password is kept by the directory")
        self.policy.check(password, current["login"])
        return self.collection.find_one_and_update(
            {"id": admin_id}, {"$set": {"password_hash": hash_password(password), "updated_at": now()}},
            return_document=ReturnDocument.AFTER)

    # -- TOTP ------------------------------------------------------------------------------
    def begin_totp(self, admin_id: int) -> str:
        """A new pending secret (the enrolled one, if any, stays until confirmed)."""
        self.get(admin_id)
        secret = totp.new_secret()
        self.collection.update_one({"id": admin_id}, {"$set": {"totp_pending": secret}})
        return secret

    def confirm_totp(self, admin_id: int, code: str) -> bool:
        doc = self.get(admin_id)
        secret = doc.get("totp_pending")
        step = totp.matching_step(secret, code) if secret else None
        if step is None:
            return False
        result = self.collection.update_one(
            {"id": admin_id, "totp_pending": secret},
            {"$set": {"totp_secret": secret, "totp_step": step, "updated_at": now()},
             "$unset": {"totp_pending": ""}})
        return result.modified_count == 1

    def check_totp(self, admin_id: int, code: str) -> bool:
        """True once for a right code; a code of a step already used (or older) is refused."""
        doc = self.get(admin_id)
        secret = doc.get("totp_secret")
        step = totp.matching_step(secret, code) if secret else None
        if step is None or step <= doc.get("totp_step", -1):
            return False
        try:
            self.totp_uses.insert_one({"_id": f"{admin_id}:{step}", "admin": admin_id, "step": step,
                                       "at": now()})
        except DuplicateKeyError:  # the same code, used a moment ago (perhaps in another worker)
            return False
        self.collection.update_one({"id": admin_id, "$or": [{"totp_step": {"$lt": step}},
                                                            {"totp_step": {"$exists": False}}]},
                                   {"$set": {"totp_step": step}})
        self.totp_uses.delete_many({"admin": admin_id, "step": {"$lt": step - 2 * totp.DRIFT - 1}})
        return True
