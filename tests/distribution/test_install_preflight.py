"""install.sh's preflight: bad input fails with one clear FAIL line per problem and changes
nothing (no Ansible venv, no log, no playbook run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.lib import ROOT

INSTALL = ROOT / "install.sh"


def run_install(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ALTCRAFT_")}
    environ.update({
        "ALTCRAFT_ANSIBLE_VENV": str(tmp_path / "ansible-venv"),
        "ALTCRAFT_INSTALL_LOG": str(tmp_path / "install.log"),
        **env,
    })
    return subprocess.run(["bash", str(INSTALL), *args], env=environ, capture_output=True,
                          text=True, timeout=120)


def assert_nothing_changed(tmp_path: Path) -> None:
    assert not (tmp_path / "ansible-venv").exists(), "preflight failed but a venv was made"
    assert not (tmp_path / "install.log").exists(), "preflight failed but Ansible ran"


def fail_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("FAIL ")]


def test_help_documents_every_option_and_its_environment_twin():
    result = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option, twin in [("--inventory", "ALTCRAFT_INVENTORY"), ("--kv-engine", "ALTCRAFT_KV_ENGINE"),
                         ("--documents-engine", "ALTCRAFT_DOCUMENTS_ENGINE"),
                         ("--ssdb-engine", "ALTCRAFT_SSDB_ENGINE"),
                         ("--clickhouse-source", "ALTCRAFT_CLICKHOUSE_SOURCE"),
                         ("--preflight-only", "ALTCRAFT_PREFLIGHT_ONLY"), ("--wheel", "ALTCRAFT_WHEEL")]:
        assert option in result.stdout and twin in result.stdout, option


def test_unknown_inventory_fails_and_changes_nothing(tmp_path):
    result = run_install(tmp_path, "-i", "no-such-scheme")
    assert result.returncode == 1, result.stdout + result.stderr
    assert any("FAIL inventory:" in line and "no-such-scheme" in line for line in fail_lines(result)), \
        result.stderr
    assert "nothing was changed" in result.stderr
    assert_nothing_changed(tmp_path)


@pytest.mark.parametrize("option,variable,value", [
    ("--kv-engine", "altcraft_kv_engine", "memcached"),
    ("--documents-engine", "altcraft_documents_engine", "couchdb"),
    ("--ssdb-engine", "altcraft_ssdb_engine", "leveldb"),
    ("--clickhouse-source", "altcraft_clickhouse_source", "snap"),
])
def test_bad_engine_value_fails_naming_the_variable(tmp_path, option, variable, value):
    result = run_install(tmp_path, option, value)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"FAIL {variable}: '{value}' is not one of" in result.stderr
    assert_nothing_changed(tmp_path)


def test_environment_twin_is_checked_like_the_flag(tmp_path):
    result = run_install(tmp_path, ALTCRAFT_KV_ENGINE="memcached")
    assert result.returncode == 1
    assert "FAIL altcraft_kv_engine: 'memcached' is not one of: kvrocks redis" in result.stderr
    assert_nothing_changed(tmp_path)


def test_every_problem_gets_its_own_line(tmp_path):
    result = run_install(tmp_path, "-i", "nowhere", "--kv-engine", "x", "--ssdb-engine", "y")
    assert result.returncode == 1
    assert len(fail_lines(result)) == 3, result.stderr
    assert "3 problem(s)" in result.stderr
    assert_nothing_changed(tmp_path)


def test_unknown_option_is_a_usage_error(tmp_path):
    result = run_install(tmp_path, "--frobnicate")
    assert result.returncode == 2
    assert "unknown option: --frobnicate" in result.stderr
    assert_nothing_changed(tmp_path)
