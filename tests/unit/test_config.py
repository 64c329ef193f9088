import json
from pathlib import Path

import pytest

from altcraft import config as cfg
from altcraft.registry import PROCESS_NAMES

SECRET = "x" * 32


def minimal(**extra) -> dict:
    return {"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET, **extra}


def errors_of(data) -> dict[str, str]:
    config, report = cfg.validate(data, PROCESS_NAMES)
    assert config is None
    return {issue.key: issue.message for issue in report.errors}


def test_minimal_config_takes_altcraft_defaults():
    config, report = cfg.validate(minimal())
    assert report.ok and not report.warnings
    assert config.BASEDIR == "/opt/akd"
    assert config.CONTROLDB_PORT == 27017 and config.ACCOUNTDB_PORT == 27018
    assert config.CLICKHOUSE_SYSTEM.DATABASE_NAME == "altcraft_system"
    assert config.SSDB_HBSUPP_PORT == 4420 and config.SSDB_NOTIFY_PORT == 4430
    assert config.CAMP_DUPLICATESDB.NODES[0].PORT == 6666
    assert config.pids_dir == Path("/opt/akd/pids") and config.logs_dir == Path("/opt/akd/logs")


def test_three_mistakes_are_all_reported_each_naming_its_key():
    data = minimal(RABBITMQ_PORT=70000, CLICKHOUSE_SYSTEM={"PORT": "9000"})
    del data["TRACKING_CRYPT_KEY"]
    errors = errors_of(data)
    assert errors == {
        "RABBITMQ_PORT": "not a TCP port: 70000 (expected 1-65535)",
        "CLICKHOUSE_SYSTEM.PORT": "wrong type: expected integer, got string",
        "TRACKING_CRYPT_KEY": "missing (required)",
    }


def test_short_secret_is_refused_without_echoing_it():
    data = minimal(PRIVATE_KEY="hunter2-is-short")
    config, report = cfg.validate(data)
    assert config is None
    (issue,) = report.errors
    assert issue.key == "PRIVATE_KEY"
    assert "16 characters, at least 32" in issue.message
    assert "hunter2" not in str(report.as_dict())


def test_nested_list_items_are_located():
    errors = errors_of(minimal(CAMP_DUPLICATESDB={"NODES": [{"HOST": "kv1", "PORT": 0}]}))
    assert errors == {"CAMP_DUPLICATESDB.NODES[0].PORT": "not a TCP port: 0 (expected 1-65535)"}


def test_booleans_are_not_numbers_and_enums_are_checked():
    errors = errors_of(minimal(CONTROLDB_PORT=True, DEFAULT_LOG_LEVEL="LOUD"))
    assert errors["CONTROLDB_PORT"] == "wrong type: expected integer, got boolean"
    assert errors["DEFAULT_LOG_LEVEL"].startswith("input should be")


def test_unknown_keys_are_warnings_not_errors():
    config, report = cfg.validate(minimal(WEBLOYALTY_ENABLE=True, CLICKHOUSE_SYSTEM={"SHARDS": "c1"}))
    assert config is not None and report.ok
    assert {str(w) for w in report.warnings} == {
        "WEBLOYALTY_ENABLE: unknown key (ignored)",
        "CLICKHOUSE_SYSTEM.SHARDS: unknown key (ignored)",
    }


def test_process_overrides_must_name_real_processes():
    errors = errors_of(minimal(PROCESSES={"apii": {"PORT": 9999}}))
    assert errors == {"PROCESSES.apii": "no such process (see akd --processes)"}


def test_root_must_be_an_object():
    assert errors_of([1, 2]) == {"(root)": "main.json must hold a JSON object"}


def test_load_reports_json_syntax_with_position(tmp_path):
    path = tmp_path / "main.json"
    path.write_text('{\n  "BASEDIR": "/opt/akd",\n  oops\n}')
    with pytest.raises(cfg.ConfigError) as exc:
        cfg.load(path)
    assert "line 3 column 3" in str(exc.value)


def test_load_missing_file(tmp_path):
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.load(tmp_path / "nope.json")


def test_path_resolution_order(monkeypatch, tmp_path):
    monkeypatch.delenv(cfg.CONFIG_ENV, raising=False)
    assert cfg.resolve_path() == Path("/opt/akd/config/main.json")
    monkeypatch.setenv(cfg.CONFIG_ENV, str(tmp_path / "env.json"))
    assert cfg.resolve_path() == tmp_path / "env.json"
    assert cfg.resolve_path(tmp_path / "flag.json") == tmp_path / "flag.json"


def test_load_valid_file_round_trip(tmp_path):
    path = tmp_path / "main.json"
    path.write_text(json.dumps(minimal(BASEDIR=str(tmp_path))))
    config, report = cfg.load(path)
    assert config.basedir == tmp_path and report.ok


def test_patterns_must_be_regular_expressions():
    errors = errors_of(minimal(MTA={"BOUNCE_PATTERNS": [{"TYPE": "hard", "PATTERN": "user (unknown"}],
                                    "LOCK_RULES": [{"PATTERN": "too many[", "SECONDS": 0}]}))
    assert set(errors) == {"MTA.BOUNCE_PATTERNS[0].PATTERN", "MTA.LOCK_RULES[0].PATTERN", "MTA.LOCK_RULES[0].SECONDS"}
    assert errors["MTA.BOUNCE_PATTERNS[0].PATTERN"].startswith("not a regular expression: missing )")


def test_webadmin_totp_required_is_a_boolean_off_by_default():
    config, report = cfg.validate(minimal())
    assert report.ok and config.WEBADMIN_TOTP_REQUIRED is False
    config, report = cfg.validate(minimal(WEBADMIN_TOTP_REQUIRED=True))
    assert report.ok and config.WEBADMIN_TOTP_REQUIRED is True
    errors = errors_of(minimal(WEBADMIN_TOTP_REQUIRED="yes"))
    assert errors == {"WEBADMIN_TOTP_REQUIRED": "wrong type: expected boolean, got string"}


def _ldap(**keys) -> dict:
    section = {"ENABLE": True, "SERVERS": ["ldap://ldap.example.com"], "USER_BASE": "ou=people,dc=example,dc=com",
               "BIND_DN": "cn=svc,dc=example,dc=com", "BIND_PASSWORD": "svc-secret-value",
               "ROLES": {"cn=admins,ou=groups,dc=example,dc=com": "admin"}}
    section.update(keys)
    return minimal(WEBADMIN_LDAP=section)


def test_webadmin_ldap_is_off_by_default_and_a_complete_section_is_valid():
    config, report = cfg.validate(minimal())
    assert report.ok and config.WEBADMIN_LDAP.ENABLE is False
    config, report = cfg.validate(_ldap(SERVERS=["ldap://a.example.com:389", "ldaps://b.example.com"]))
    assert report.ok and not report.warnings, report.as_dict()
    assert config.WEBADMIN_LDAP.TIMEOUT_SECONDS == 10


def test_webadmin_ldap_problems_name_their_keys_and_never_echo_the_password():
    errors = errors_of(_ldap(SERVERS=["http://ldap.example.com"], USER_FILTER="(uid=alice)",
                             ROLES={"cn=admins,dc=example,dc=com": "root"}, CONNECT_TIMEOUT_SECONDS=0,
                             GROUP_FILTER="(&(member={dn})"))
    assert set(errors) == {"WEBADMIN_LDAP.SERVERS[0]", "WEBADMIN_LDAP.USER_FILTER", "WEBADMIN_LDAP.GROUP_FILTER",
                           "WEBADMIN_LDAP.ROLES", "WEBADMIN_LDAP.CONNECT_TIMEOUT_SECONDS"}
    assert errors["WEBADMIN_LDAP.GROUP_FILTER"] == \
        "not an LDAP filter: it must be one parenthesized expression, like (uid={login})"
    assert "ldap://host[:port] (StartTLS) or ldaps://host[:port]" in errors["WEBADMIN_LDAP.SERVERS[0]"]
    assert "{login}" in errors["WEBADMIN_LDAP.USER_FILTER"]
    assert "not one of admin, viewer" in errors["WEBADMIN_LDAP.ROLES"]
    # what the keys say together (once each key is well formed)
    errors = errors_of(_ldap(SERVERS=[], USER_BASE="", ROLES={}, BIND_PASSWORD="", CA_FILE="ca.pem"))
    assert errors == {
        "WEBADMIN_LDAP.BIND_PASSWORD": "missing: BIND_DN is set",
        "WEBADMIN_LDAP.CA_FILE": "must be an absolute path",
        "WEBADMIN_LDAP.SERVERS": "missing: at least one ldap:// or ldaps:// URL when ENABLE is true",
        "WEBADMIN_LDAP.USER_BASE": "missing: the DN users are searched under when ENABLE is true",
        "WEBADMIN_LDAP.ROLES": "missing: at least one group DN -> role when ENABLE is true (no group, no sign-in)",
    }
    errors = errors_of(_ldap(BIND_DN=""))
    assert errors == {"WEBADMIN_LDAP.BIND_DN": "missing: BIND_PASSWORD is set"}
    errors = errors_of(_ldap(SERVERS=["ldap://u:svc-secret-value@h"]))
    assert errors == {"WEBADMIN_LDAP.SERVERS[0]": "no user or password in the URL: they are BIND_DN and BIND_PASSWORD"}


def test_the_scenario_test_clock_is_checked_and_a_test_value_is_a_warning():
    config, report = cfg.validate(minimal(WORKFLOWS={"TIME_SCALE": 0.0001, "LEASE_SECONDS": 5}))
    assert report.ok and config.WORKFLOWS.TIME_SCALE == 0.0001 and config.WORKFLOWS.LEASE_SECONDS == 5
    assert [str(w) for w in report.warnings] == [
        "WORKFLOWS.TIME_SCALE: scenario waits last 0.0001 of their length: a setting for tests, 1 in production"]
    assert cfg.validate(minimal(WORKFLOWS={"TIME_SCALE": 1}))[1].warnings == []
    assert set(errors_of(minimal(WORKFLOWS={"TIME_SCALE": 0, "LEASE_SECONDS": 1}))) == {
        "WORKFLOWS.TIME_SCALE", "WORKFLOWS.LEASE_SECONDS"}
    assert "WORKFLOWS.TIME_SCALE" in errors_of(minimal(WORKFLOWS={"TIME_SCALE": 2}))


def test_akmtad_off_loopback_needs_a_control_token():
    """Hold, release and purge answer whoever reaches akmtad's control port: off loopback it
    takes a bearer token, and main.json without one is refused naming the key."""
    errors = errors_of(minimal(PROCESSES={"akmtad": {"IP": "10.0.0.21"}}))
    assert list(errors) == ["MTA.CONTROL_TOKEN"] and "10.0.0.21" in errors["MTA.CONTROL_TOKEN"]
    for host in ("127.0.0.1", "::1", "localhost"):
        assert cfg.validate(minimal(PROCESSES={"akmtad": {"IP": host}}), PROCESS_NAMES)[1].ok, host
    config, report = cfg.validate(minimal(PROCESSES={"akmtad": {"IP": "10.0.0.21"}}, MTA={"CONTROL_TOKEN": SECRET}))
    assert report.ok and config.MTA.CONTROL_TOKEN == SECRET
    assert "secret too short" in errors_of(minimal(MTA={"CONTROL_TOKEN": "short"}))["MTA.CONTROL_TOKEN"]
