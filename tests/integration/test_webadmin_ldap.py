"""webadmin's directory sign-in against a real directory: the harness's slapd (StartTLS and
LDAPS with a test CA; a simple bind without TLS is refused there). A directory user in a
mapped group signs in and becomes a directory administrator with that group's role; a wrong
password and a user of no mapped group are refused; with slapd stopped the sign-in page says
the directory is unreachable and a local administrator still signs in."""

from __future__ import annotations

import json

import pytest

from altcraft import config as cfg
from altcraft import registry
from altcraft.domain.audit import Filter
from altcraft.domain.errors import DirectoryUnreachable
from altcraft.schema import migrate as migration
from altcraft.stores.directory import Directory
from altcraft.web.admin import create_app
from altcraft.wiring import Platform
from tests.lib import directory
from tests.lib.harness import make_config
from tests.lib.webpanel import PASSWORD, make_admin, token_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slapd(harness) -> dict:
    return directory.facts(harness)


@pytest.fixture(scope="module")
def env(harness, slapd, tmp_path_factory):
    """One control database for the module (made and migrated once): main.json with a
    WEBADMIN_LDAP section for slapd, read through the validator."""
    basedir = tmp_path_factory.mktemp("akd")
    main_json = basedir / "main.json"
    main_json.write_text(json.dumps(make_config(harness, basedir)))
    config = _config(main_json, slapd)
    migration.run(config)
    platform = Platform(config)
    yield main_json, config, platform
    platform.close()


@pytest.fixture(scope="module")
def ldap_config(env):
    return env[1]


@pytest.fixture(scope="module")
def platform(env):
    return env[2]


@pytest.fixture(scope="module")
def main_json(env):
    return env[0]


def _config(main_json, slapd: dict, top: dict | None = None, **ldap):
    """main.json with a WEBADMIN_LDAP section for slapd (`ldap` overrides its keys, `top`
    sets others)."""
    data = json.loads(main_json.read_text())
    data.update(top or {}, WEBADMIN_LDAP=directory.settings(slapd, **ldap))
    main_json.write_text(json.dumps(data))
    return cfg.load(main_json)[0]  # as main.json says it: through the validator


def _signin(client, login: str, password: str):
    token = token_of(client.get("/signin").data)
    return client.post("/signin", data={"login": login, "password": password, "csrf_token": token})


def test_a_directory_user_in_a_mapped_group_signs_in(ldap_config, slapd, platform):
    assert platform.admins.find("ldap-admin") is None  # the module's first sign-in
    client = create_app(ldap_config, registry.get("webadmin")).test_client()
    response = _signin(client, "ldap-admin", slapd["password"])
    assert response.status_code == 302 and response.headers["Location"] == "/accounts"
    assert client.get("/accounts").status_code == 200
    admin = platform.admins.find("ldap-admin")
    assert admin["source"] == "ldap" and admin["role"] == "admin" and "password_hash" not in admin
    assert admin["dn"] == f"uid=ldap-admin,ou=people,{slapd['base']}"
    # made once: the next sign-in finds the same record and changes nothing
    client.post("/signout", data={"csrf_token": token_of(client.get("/accounts").data)})
    assert _signin(client, "ldap-admin", slapd["password"]).status_code == 302
    assert platform.admins.find("ldap-admin")["id"] == admin["id"]
    entries = platform.journal.list(Filter(actor="ldap-admin"))
    assert [(e["action"], e["channel"], e["actor_kind"]) for e in entries] == \
        [("admin.directory_created", "webadmin", "admin")]
    assert slapd["password"] not in json.dumps(entries, default=str)

    # a member of the viewers' group sees the pages and changes nothing
    viewer = create_app(ldap_config, registry.get("webadmin")).test_client()
    assert _signin(viewer, "ldap-viewer", slapd["password"]).status_code == 302
    assert platform.admins.find("ldap-viewer")["role"] == "viewer"
    token = token_of(viewer.get("/accounts/new").data)
    assert viewer.post("/accounts/new", data={"name": "nope", "csrf_token": token}).status_code == 403


def test_a_wrong_password_and_a_user_outside_the_groups_are_refused(ldap_config, main_json, slapd, platform):
    """(ends with ldap-admin deactivated: a later sign-in with its group mapped reactivates it)"""
    app = create_app(ldap_config, registry.get("webadmin"))
    client = app.test_client()
    wrong = _signin(client, "ldap-admin", "not-" + slapd["password"])
    assert wrong.status_code == 401 and b"Wrong login or password." in wrong.data
    outsider = _signin(client, "ldap-outsider", slapd["password"])
    assert outsider.status_code == 401 and b"Wrong login or password." in outsider.data
    assert client.get("/accounts").status_code == 302
    assert platform.admins.find("ldap-outsider") is None
    assert _signin(client, "", slapd["password"]).status_code == 401  # no anonymous bind

    # the directory no longer maps ldap-admin's group: its open session ends at its next
    # request, and its next sign-in is refused
    assert _signin(client, "ldap-admin", slapd["password"]).status_code == 302
    assert client.get("/accounts").status_code == 200
    narrowed = _config(main_json, slapd, ROLES={directory.group(slapd, "altcraft-viewers"): "viewer"})
    _config(main_json, slapd)  # main.json as it was, for the tests after this one
    other = create_app(narrowed, registry.get("webadmin")).test_client()
    assert _signin(other, "ldap-admin", slapd["password"]).status_code == 401
    assert platform.admins.find("ldap-admin")["active"] is False
    assert client.get("/accounts").status_code == 302


def test_totp_rules_apply_to_directory_administrators(ldap_config, slapd, platform):
    required = ldap_config.model_copy(update={"WEBADMIN_TOTP_REQUIRED": True})
    client = create_app(required, registry.get("webadmin")).test_client()
    response = _signin(client, "ldap-admin", slapd["password"])
    assert response.status_code == 302 and response.headers["Location"] == "/totp"
    assert client.get("/accounts").status_code == 302


def test_with_the_directory_down_it_says_so_and_local_admins_sign_in(ldap_config, slapd, platform):
    local = make_admin(platform)
    client = create_app(ldap_config, registry.get("webadmin")).test_client()
    directory.stop()
    try:
        down = _signin(client, "ldap-admin", slapd["password"])
        assert down.status_code == 503
        assert b"The directory is unreachable" in down.data
        assert b"local administrators can" in down.data
        assert client.get("/accounts").status_code == 302
        response = _signin(client, local["login"], PASSWORD)
        assert response.status_code == 302 and response.headers["Location"] == "/accounts"
        assert client.get("/accounts").status_code == 200
    finally:
        directory.start()
    # and back: the directory user signs in again
    again = create_app(ldap_config, registry.get("webadmin")).test_client()
    assert _signin(again, "ldap-admin", slapd["password"]).status_code == 302


def test_ldaps_memberof_and_the_next_server(slapd):
    """LDAPS with groups from memberOf; a server that is down is skipped for the next."""
    settings = cfg.LdapSettings(**directory.settings(
        slapd, GROUP_BASE="",
        SERVERS=[f"ldap://{slapd['host']}:1", f"ldaps://{slapd['host']}:{slapd['ldaps_port']}"]))
    user = Directory(settings).authenticate("ldap-admin", slapd["password"])
    assert user is not None and directory.group(slapd, "altcraft-admins") in user.groups
    assert Directory(settings).authenticate("ldap-admin", "") is None


def test_a_certificate_the_ca_file_does_not_vouch_for_is_not_used(slapd):
    """The system's CAs do not know the test CA: TLS fails, the server counts as unreachable
    (no password is sent to a server that could not prove who it is)."""
    settings = cfg.LdapSettings(**directory.settings(slapd, CA_FILE=""))
    with pytest.raises(DirectoryUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        Directory(settings).authenticate("ldap-admin", slapd["password"])


def test_a_certificate_for_another_name_is_not_used(slapd):
    """The right CA, but the server is reached as "127.1" (the same address, a name the
    certificate does not carry): refused, so a stolen certificate of another host fails."""
    settings = cfg.LdapSettings(**directory.settings(slapd, SERVERS=[f"ldap://127.1:{slapd['port']}"]))
    with pytest.raises(DirectoryUnreachable, match="LDAPStartTLSError"):
        Directory(settings).authenticate("ldap-admin", slapd["password"])
