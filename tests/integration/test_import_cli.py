"""aktool import / token / admin against the real document store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from altcraft.schema import migrate as migration
from altcraft.wiring import Platform
from tests.lib import ROOT
from tests.lib.cli import run

pytestmark = pytest.mark.integration


@pytest.fixture
def target(config):
    migration.run(config)
    platform = Platform(config)
    account = platform.accounts.save(name="importer")
    db = platform.databases(account["id"]).add("main", "email", [{"name": "score", "type": "integer"}])
    yield platform, account["id"], db.id
    platform.close()


def test_import_100k_rows_with_broken_ones(tmp_path, main_json, target):
    platform, account_id, db_id = target
    csv_path = tmp_path / "profiles.csv"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_profiles.py"), str(csv_path),
                    "--rows", "100000", "--broken", "0.01", "--seed", "7"], check=True, capture_output=True)
    broken = [int(n) for n in (tmp_path / "profiles.csv.broken").read_text().split()]
    assert 800 < len(broken) < 1200

    dry = run("aktool", "import", str(csv_path), "--account", str(account_id), "--db", str(db_id),
              "--dry-run", "--json", config=main_json, timeout=600)
    assert dry.returncode == 1
    assert json.loads(dry.stdout)["valid"] == 100_000 - len(broken)
    profiles = platform.profiles(account_id, db_id)
    assert profiles.collection.estimated_document_count() == 0  # --dry-run wrote nothing

    errors_file = tmp_path / "errors.csv"
    first = run("aktool", "import", str(csv_path), "--account", str(account_id), "--db", str(db_id),
                "--json", "--errors-file", str(errors_file), config=main_json, timeout=900)
    assert first.returncode == 1, first.stderr  # some rows were bad
    report = json.loads(first.stdout)
    assert report["inserted"] == 100_000 - len(broken)
    assert [e["line"] for e in report["errors"]] == broken  # every broken row, by its line
    assert {e["field"] for e in report["errors"]} == {"email", "birthday", "score"}
    assert errors_file.read_text().count("\n") == len(broken) + 1
    assert profiles.collection.count_documents({}) == 100_000 - len(broken)

    second = run("aktool", "import", str(csv_path), "--account", str(account_id), "--db", str(db_id),
                 "--json", config=main_json, timeout=900)
    again = json.loads(second.stdout)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 100_000 - len(broken))
    assert profiles.collection.count_documents({}) == 100_000 - len(broken)


def test_import_reports_a_wrong_file_and_writes_nothing(tmp_path, main_json, target):
    platform, account_id, db_id = target
    path = tmp_path / "bad.csv"
    path.write_text("email,shoe_size\na@example.com,42\n")
    result = run("aktool", "import", str(path), "--account", str(account_id), "--db", str(db_id), config=main_json)
    assert result.returncode == 2
    assert "columns that are not fields of the database: shoe_size" in result.stderr
    missing = run("aktool", "import", str(path), "--account", str(account_id), "--db", "999", config=main_json)
    assert missing.returncode == 2 and "database 999 not found" in missing.stderr
    assert platform.profiles(account_id, db_id).collection.estimated_document_count() == 0


def test_jsonl_import_normalises_and_enriches(tmp_path, main_json, target):
    platform, account_id, db_id = target
    path = tmp_path / "p.jsonl"
    path.write_text('{"email": "Olga@Example.com", "first_name": "Ольга", "phone": "8 903 111 22 33"}\n'
                    "not json\n"
                    '{"email": "x@example.com", "score": 3}\n')
    result = run("aktool", "import", str(path), "--account", str(account_id), "--db", str(db_id), config=main_json)
    assert result.returncode == 1
    assert "line 2: (row): not valid JSON" in result.stdout
    profile = platform.profiles(account_id, db_id).get(key_value="olga@example.com")
    assert profile["data"] == {"email": "olga@example.com", "first_name": "Ольга", "gender": "f",
                               "phone": "+79031112233"}


def test_token_create_prints_the_token_last(main_json, config):
    migration.run(config)
    result = run("aktool", "token", "create", "--admin", config=main_json)
    assert result.returncode == 0
    token = result.stdout.strip().splitlines()[-1]
    platform = Platform(config)
    try:
        assert platform.tokens.authenticate(token).scope == "admin"
        stored = platform.control.tokens.find_one({"scope": "admin"})
        assert token not in json.dumps(stored, default=str)  # only its hash is kept
    finally:
        platform.close()
    assert run("aktool", "token", "create", "--account", "424242", config=main_json).returncode == 1
    assert run("aktool", "token", "create", config=main_json).returncode == 2


def test_admin_ensure_is_idempotent_and_checks_the_file(tmp_path, main_json, config):
    migration.run(config)
    secret = tmp_path / "admin.password"
    secret.write_text("Correct-Horse-Battery-9\n")
    secret.chmod(0o644)
    assert run("aktool", "admin", "ensure", "--password-file", str(secret), config=main_json).returncode == 2
    secret.chmod(0o600)
    first = run("aktool", "admin", "ensure", "--password-file", str(secret), config=main_json)
    second = run("aktool", "admin", "ensure", "--password-file", str(secret), config=main_json)
    assert "created" in first.stdout and "already exists" in second.stdout
    weak = tmp_path / "weak.password"
    weak.write_text("password123")
    weak.chmod(0o600)
    result = run("aktool", "admin", "ensure", "--login", "root2", "--password-file", str(weak), config=main_json)
    assert result.returncode == 1 and "too common" in result.stderr
