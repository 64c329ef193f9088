"""Who signs in to webadmin (domain/admin_signin.py), with stand-ins for the admins store and
the directory: local administrators first and never through the directory; a directory user
only with a mapped group; the strongest role; a record deactivated when its groups no longer
map. The real directory and store: tests/integration/test_webadmin_ldap.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from altcraft.config import LdapSettings
from altcraft.domain.admin_signin import AdminSignIn, normalize_dn, role_of
from altcraft.domain.errors import DirectoryUnreachable
from altcraft.stores.directory import Directory

ADMINS_GROUP = "cn=Altcraft-Admins, ou=groups,dc=example,dc=com"
VIEWERS_GROUP = "cn=viewers,ou=groups,dc=example,dc=com"
ROLES = {ADMINS_GROUP: "admin", VIEWERS_GROUP: "viewer"}


@dataclass
class Entry:
    dn: str
    login: str
    groups: tuple[str, ...]


class FakeDirectory:
    def __init__(self, entries: dict[tuple[str, str], Entry] | None = None, down: bool = False):
        self.entries, self.down, self.asked = entries or {}, down, []

    def authenticate(self, login, password):
        self.asked.append(login)
        if self.down:
            raise DirectoryUnreachable("ldap://x: refused")
        return self.entries.get((login, password))


class FakeAdmins:
    def __init__(self):
        self.docs: dict[str, dict] = {}

    def find(self, login):
        return self.docs.get(login)

    def verify(self, login, password):
        doc = self.docs.get(login)
        return doc if doc and doc.get("password") == password else None

    def from_directory(self, login, dn, role):
        doc = self.docs.setdefault(login, {"id": len(self.docs) + 1, "login": login, "source": "ldap"})
        changes = {k: v for k, v in {"dn": dn, "role": role, "active": True}.items() if doc.get(k) != v}
        created = "dn" not in doc
        doc.update(changes)
        return doc, ({"source": "ldap", **changes} if created else changes)

    def deactivate(self, admin_id):
        doc = next(d for d in self.docs.values() if d["id"] == admin_id)
        changed = doc.get("active", True)
        doc["active"] = False
        return changed


def test_dns_compare_without_case_or_spaces_and_the_strongest_role_wins():
    assert normalize_dn("CN=Altcraft-Admins , OU=Groups,dc=example, dc=com") == \
        "cn=altcraft-admins,ou=groups,dc=example,dc=com"
    assert role_of(["cn=altcraft-admins,ou=groups,dc=example,dc=com"], ROLES) == "admin"
    assert role_of([VIEWERS_GROUP, "CN=ALTCRAFT-ADMINS,OU=GROUPS,DC=EXAMPLE,DC=COM"], ROLES) == "admin"
    assert role_of([VIEWERS_GROUP], ROLES) == "viewer"
    assert role_of(["cn=staff,dc=example,dc=com"], ROLES) is None
    assert role_of([], ROLES) is None


def test_a_local_administrator_is_never_asked_of_the_directory():
    admins, directory = FakeAdmins(), FakeDirectory(down=True)
    admins.docs["root"] = {"id": 1, "login": "root", "password": "local-pass"}
    signin = AdminSignIn(admins, directory, ROLES)
    assert signin.verify("root", "local-pass")["id"] == 1
    assert signin.verify("root", "wrong") is None
    assert directory.asked == []
    with pytest.raises(DirectoryUnreachable):
        signin.verify("alice", "pass")


def test_without_a_directory_only_local_administrators_sign_in():
    admins = FakeAdmins()
    admins.docs["bob"] = {"id": 1, "login": "bob", "source": "ldap", "dn": "uid=bob", "role": "admin"}
    assert AdminSignIn(admins, None, ROLES).verify("bob", "anything") is None


def test_a_directory_user_signs_in_with_a_mapped_group_and_is_recorded_once():
    changes = []
    alice = Entry("uid=alice,ou=people,dc=example,dc=com", "alice", (VIEWERS_GROUP,))
    admins = FakeAdmins()
    signin = AdminSignIn(admins, FakeDirectory({("Alice", "pw"): alice, ("alice", "pw"): alice}), ROLES,
                         changes.append)
    admin = signin.verify("Alice", "pw")  # the directory's spelling becomes the login
    assert admin["login"] == "alice" and admin["role"] == "viewer" and admin["source"] == "ldap"
    assert [c.action for c in changes] == ["created"]
    assert signin.verify("alice", "pw")["id"] == admin["id"] and len(changes) == 1
    assert signin.verify("alice", "wrong") is None and admins.docs["alice"]["active"] is True


def test_no_mapped_group_refuses_and_deactivates_a_known_record():
    changes = []
    entry = Entry("uid=carol,dc=example,dc=com", "carol", (ADMINS_GROUP,))
    directory = FakeDirectory({("carol", "pw"): entry})
    signin = AdminSignIn(FakeAdmins(), directory, ROLES, changes.append)
    assert signin.verify("carol", "pw")["role"] == "admin"
    directory.entries[("carol", "pw")] = Entry(entry.dn, "carol", ("cn=staff,dc=example,dc=com",))
    assert signin.verify("carol", "pw") is None
    assert [c.action for c in changes] == ["created", "deactivated"]
    assert signin.verify("carol", "pw") is None and len(changes) == 2  # once


def test_the_directory_cannot_take_over_a_local_login_by_its_spelling():
    admins = FakeAdmins()
    admins.docs["root"] = {"id": 1, "login": "root", "password": "local-pass"}
    spoof = Entry("uid=ROOT,dc=example,dc=com", "root", (ADMINS_GROUP,))
    assert AdminSignIn(admins, FakeDirectory({("ROOT", "pw"): spoof}), ROLES).verify("ROOT", "pw") is None


def test_an_empty_password_never_reaches_a_server():
    """A simple bind with a DN and no password is an anonymous bind that succeeds."""
    unreachable = LdapSettings(ENABLE=True, SERVERS=["ldap://127.0.0.1:1"], USER_BASE="dc=x",
                               ROLES={ADMINS_GROUP: "admin"})
    assert Directory(unreachable).authenticate("alice", "") is None
    assert Directory(unreachable).authenticate("", "pw") is None
    with pytest.raises(DirectoryUnreachable, match="127.0.0.1:1"):
        Directory(unreachable).authenticate("alice", "pw")
