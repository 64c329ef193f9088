"""Versioned migrations against the real servers: `aktool migrate` records each migration
once and a second run changes nothing; a claim in the ledger is exclusive, so two runs at
once apply a migration once. (A backup of an older schema, restored, gets the migrations it
lacks: tests/integration/test_move.py, which restores one anyway.)"""

from __future__ import annotations

import threading

import pytest

from altcraft.schema import ledger as ledger_mod
from altcraft.schema import migrate as migration
from altcraft.schema.migrations import MIGRATIONS, Migration
from altcraft.stores import documents
from tests.lib.cli import run_json

pytestmark = pytest.mark.integration


@pytest.fixture
def control(config):
    client = documents.connect(config, "control")
    yield documents.control_db(client, config)
    client.drop_database(config.CONTROLDB_NAME)
    client.close()


def test_migrate_records_each_migration_once_and_a_second_run_changes_nothing(main_json, control):
    code, status = run_json("aktool", "migrate", "--dry-run", config=main_json)
    assert code == 0, status
    assert [(m["store"], m["version"]) for m in status["migrations_pending"]] == [m.key for m in MIGRATIONS]
    assert control[ledger_mod.COLLECTION].count_documents({}) == 0  # a dry run records nothing

    code, first = run_json("aktool", "migrate", config=main_json)
    assert code == 0, first
    assert [(m["store"], m["version"]) for m in first["migrations_applied"]] == [m.key for m in MIGRATIONS]
    assert first["schema_versions"] == {"mongodb": 1, "clickhouse": 1, "rabbitmq": 1}
    records = list(control[ledger_mod.COLLECTION].find({}, {"_id": 0}))
    assert len(records) == len(MIGRATIONS)
    assert all(r["state"] == "applied" and r["applied_at"] and r["platform_version"] for r in records)
    assert migration.recorded_platform_version(control) is not None

    code, second = run_json("aktool", "migrate", config=main_json)
    assert code == 0, second
    assert (second["changes"], second["migrations_applied"], second["migrations_pending"]) == ([], [], [])
    assert control[ledger_mod.COLLECTION].count_documents({}) == len(MIGRATIONS)


def test_a_claim_is_exclusive_and_a_dead_holder_is_taken_over(config, control):
    first, second = ledger_mod.Ledger(control), ledger_mod.Ledger(control)
    first.ensure_index()
    assert first.claim("mongodb", 7, "x", "run-a", 60, "0") == "claimed"
    assert second.claim("mongodb", 7, "x", "run-b", 60, "0") == "busy"
    first.complete("mongodb", 7, "run-a")
    assert second.claim("mongodb", 7, "x", "run-b", 60, "0") == "applied"

    assert first.claim("mongodb", 8, "y", "run-a", 60, "0") == "claimed"
    later = ledger_mod.Ledger(control, clock=lambda: 10**10)  # run-a's lease has run out
    assert later.claim("mongodb", 8, "y", "run-c", 60, "0") == "claimed"
    with pytest.raises(RuntimeError, match="taken over"):
        first.complete("mongodb", 8, "run-a")


def test_two_runs_at_once_apply_a_migration_once(config, control):
    meet = threading.Barrier(2, timeout=30)
    control["applied_count"].insert_one({"_id": 1, "n": 0})
    counted = Migration("mongodb", 1, "count", lambda ctx: str(
        ctx.control["applied_count"].update_one({"_id": 1}, {"$inc": {"n": 1}}).modified_count))
    errors: list[BaseException] = []

    def one_run():
        try:
            migration.apply(config, migrations=(counted,), on_migration=lambda m: meet.wait())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    runs = [threading.Thread(target=one_run) for _ in range(2)]
    for t in runs:
        t.start()
    for t in runs:
        t.join(timeout=120)
    assert not errors, errors
    assert control["applied_count"].find_one({"_id": 1})["n"] == 1
    assert control[ledger_mod.COLLECTION].count_documents({"store": "mongodb", "version": 1}) == 1
