"""Who signs in as a platform administrator: a local administrator by its password here, or
else, when a directory is configured, whoever the directory vouches for and whose groups map to
a role (main.json WEBADMIN_LDAP.ROLES).

The order is the rule: a login that names a local administrator is never looked up in the
directory, so a directory being down (or holding the same name) never stops or takes over a
local administrator. For anyone else the directory decides: its entry's password, its groups
now. A directory administrator whose groups no longer map to a role is marked inactive at its
next sign-in, which ends its open sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from altcraft.domain.admins import ROLES, Admins, is_directory


class DirectoryUserLike(Protocol):
    dn: str
    login: str
    groups: tuple[str, ...]


class Authenticator(Protocol):
    def authenticate(self, login: str, password: str) -> DirectoryUserLike | None: ...


@dataclass(frozen=True)
class Change:
    """A directory administrator's record made, changed or deactivated by a sign-in (for the
    journal: `changes` holds no secret)."""

    admin: dict[str, Any]
    action: str  # "created", "updated", "deactivated"
    changes: dict[str, Any] = field(default_factory=dict)


def normalize_dn(dn: str) -> str:
    """A DN compared the way directories do for the usual attribute types: case and the
    spaces around separators do not matter."""
    parts = [part.strip() for part in dn.split(",")]
    return ",".join("=".join(side.strip() for side in part.split("=", 1)) for part in parts).lower()


def role_of(groups: tuple[str, ...] | list[str], mapping: Mapping[str, str]) -> str | None:
    """The strongest role any of `groups` maps to (admin over viewer); None: no mapped group."""
    wanted = {normalize_dn(group): role for group, role in mapping.items()}
    found = {wanted[g] for g in map(normalize_dn, groups) if g in wanted}
    return next((role for role in ROLES if role in found), None)


class AdminSignIn:
    def __init__(self, admins: Admins, directory: Authenticator | None, roles: Mapping[str, str],
                 on_change: Callable[[Change], None] | None = None):
        self.admins = admins
        self.directory = directory
        self.roles = roles
        self.on_change = on_change or (lambda change: None)

    def verify(self, login: str, password: str) -> dict[str, Any] | None:
        """The administrator signing in with this login and password, or None. Raises
        DirectoryUnreachable when the directory has to be asked and cannot be."""
        known = self.admins.find(login)
        if known is not None and not is_directory(known) or self.directory is None:
            return self.admins.verify(login, password)
        entry = self.directory.authenticate(login, password)
        if entry is None:
            return None  # a wrong password says nothing about the entry: the record stays
        role = role_of(entry.groups, self.roles)
        spelled = self.admins.find(entry.login) if entry.login != login else known
        if spelled is not None and not is_directory(spelled):
            return None  # the directory's spelling names a local administrator: not this one
        if role is None:
            if spelled is not None and self.admins.deactivate(spelled["id"]):
                self.on_change(Change(spelled, "deactivated", {"active": False}))
            return None
        admin, changes = self.admins.from_directory(entry.login, entry.dn, role)
        if changes:
            self.on_change(Change(admin, "created" if "source" in changes else "updated", changes))
        return admin
