"""The harness's LDAP directory (slapd, tests/harness/servers.sh): its facts, a WEBADMIN_LDAP
section for it, and stopping/starting it.

Seeded once by the harness (every password is the harness's test password): under
ou=people, `ldap-admin` (groups altcraft-admins and staff), `ldap-viewer` (altcraft-viewers)
and `ldap-outsider` (staff only); the service account cn=altcraft-reader,ou=services. A
simple bind needs TLS there (StartTLS on `port`, or `ldaps_port`), its certificate is signed
by the test CA `ca_file`.
"""

from __future__ import annotations

import json

from tests.lib.harness import HARNESS_DIR, HarnessError, servers
from tests.lib.ports import port_open

USERS = ("ldap-admin", "ldap-viewer", "ldap-outsider")


def facts(harness: dict) -> dict:
    """The directory's facts, starting it when it is not running (another checkout's harness
    may have rewritten harness.json without it)."""
    known = harness.get("slapd")
    if known and port_open(known["host"], known["port"]):
        return known
    start()
    return json.loads((HARNESS_DIR / "harness.json").read_text())["slapd"]


def group(facts: dict, name: str) -> str:
    return f"cn={name},ou=groups,{facts['base']}"


def settings(facts: dict, **overrides) -> dict:
    """A WEBADMIN_LDAP section for the directory: StartTLS, the test CA, groups by search,
    altcraft-admins -> admin and altcraft-viewers -> viewer."""
    section = {
        "ENABLE": True,
        "SERVERS": [f"ldap://{facts['host']}:{facts['port']}"],
        "CA_FILE": facts["ca_file"],
        "BIND_DN": facts["bind_dn"],
        "BIND_PASSWORD": facts["password"],
        "USER_BASE": f"ou=people,{facts['base']}",
        "GROUP_BASE": f"ou=groups,{facts['base']}",
        "ROLES": {group(facts, "altcraft-admins"): "admin", group(facts, "altcraft-viewers"): "viewer"},
        "CONNECT_TIMEOUT_SECONDS": 2,
        "TIMEOUT_SECONDS": 5,
    }
    section.update(overrides)
    return section


def stop() -> None:
    result = servers("stop", "slapd")
    if result.returncode != 0:
        raise HarnessError("slapd did not stop:\n" + result.stdout.decode() + result.stderr.decode())


def start() -> None:
    result = servers("start", "slapd")
    if result.returncode != 0:
        raise HarnessError("slapd did not start:\n" + result.stdout.decode() + result.stderr.decode())
