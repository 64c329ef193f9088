import json
import subprocess

import pytest
from clickhouse_driver import Client

from tests.lib.cli import run, run_json
from tests.lib.harness import HARNESS

pytestmark = pytest.mark.integration

ALL_STORES = {"controldb", "accountdb", "clickhouse", "rabbitmq", "camp_duplicatesdb",
              "procworkflow_cache", "ssdb_actions", "ssdb_hbsupp", "ssdb_notify", "ssdb_stats",
              "postgresql"}
REDIS_BACKED = {"camp_duplicatesdb", "procworkflow_cache", "ssdb_actions", "ssdb_hbsupp",
                "ssdb_notify", "ssdb_stats"}


def test_check_is_ok_for_every_store(main_json):
    result = run("aktool", "check", config=main_json)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert {line.split()[1] for line in lines} == ALL_STORES
    assert all(line.startswith("ok ") for line in lines), result.stdout

    code, report = run_json("aktool", "check", config=main_json)
    assert code == 0 and report["ok"] is True
    assert {c["name"] for c in report["checks"] if c["ok"]} == ALL_STORES


def test_check_names_a_stopped_store_and_fails(main_json):
    subprocess.run([str(HARNESS), "stop", "redis"], check=True, capture_output=True)
    try:
        result = run("aktool", "check", "--timeout", "1", config=main_json)
        code, report = run_json("aktool", "check", "--timeout", "1", config=main_json)
    finally:
        subprocess.run([str(HARNESS), "start", "redis"], check=True, capture_output=True)
    assert result.returncode == 1
    failed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAIL")}
    assert failed == REDIS_BACKED
    assert "ConnectionError" in result.stdout  # the reason is given, not only the verdict
    assert code == 1 and {c["name"] for c in report["checks"] if not c["ok"]} == REDIS_BACKED


def test_check_of_an_unknown_store_is_a_usage_error(main_json):
    result = run("aktool", "check", "--only", "mongo", config=main_json)
    assert result.returncode == 2 and "unknown store(s): mongo" in result.stderr


def _clickhouse_schema(harness, database):
    ch = harness["clickhouse"]
    client = Client(ch["host"], port=ch["port"], user=ch["user"], password=ch["password"])
    return client.execute(
        "SELECT table, name, type, default_expression FROM system.columns "
        "WHERE database = %(db)s ORDER BY table, name", {"db": database})


def _drop_topology(harness):
    import pika

    from altcraft.schema import rabbitmq as topology

    mq = harness["rabbitmq"]
    params = pika.ConnectionParameters(mq["host"], mq["port"], mq["vhost"],
                                       pika.PlainCredentials(mq["user"], mq["password"]))
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        for queue in topology.QUEUES:
            channel.queue_delete(queue.name)
        for exchange in topology.EXCHANGES:
            channel.exchange_delete(exchange.name)


def test_migrate_creates_everything_once(harness, main_json, config):
    _drop_topology(harness)
    code, first = run_json("aktool", "migrate", config=main_json)
    assert code == 0
    created = {(c["store"], c["object"]) for c in first["changes"]}
    assert ("clickhouse", f"database {config.CLICKHOUSE_SYSTEM.DATABASE_NAME}") in created
    assert ("clickhouse", "table events") in created
    assert ("controldb", "index tokens.token_hash_1_uniq") in created
    assert ("rabbitmq", "queue events.actions") in created
    assert ("rabbitmq", "exchange altcraft.events") in created
    schema_after_first = _clickhouse_schema(harness, config.CLICKHOUSE_SYSTEM.DATABASE_NAME)
    assert ("events", "event_id", "UUID", "") in schema_after_first

    second = run("aktool", "migrate", config=main_json)
    assert second.returncode == 0
    assert second.stdout.strip() == "nothing to do: every store is up to date"
    assert _clickhouse_schema(harness, config.CLICKHOUSE_SYSTEM.DATABASE_NAME) == schema_after_first


def test_migrate_adds_a_missing_column_to_an_existing_table(harness, main_json, config):
    assert run("aktool", "migrate", config=main_json).returncode == 0
    ch = harness["clickhouse"]
    client = Client(ch["host"], port=ch["port"], user=ch["user"], password=ch["password"])
    client.execute(f"ALTER TABLE `{config.CLICKHOUSE_SYSTEM.DATABASE_NAME}`.events DROP COLUMN user_agent")
    code, plan = run_json("aktool", "migrate", "--dry-run", config=main_json)
    assert plan["changes"] == [{"store": "clickhouse", "object": "column events.user_agent", "action": "add"}]
    code, applied = run_json("aktool", "migrate", config=main_json)
    assert applied["changes"] == plan["changes"]
    assert run("aktool", "migrate", config=main_json).stdout.startswith("nothing to do")


def test_migrate_fails_loudly_when_a_store_is_down(main_json, harness, basedir):
    from tests.lib.harness import make_config
    from tests.lib.ports import free_port

    broken = basedir / "broken.json"
    broken.write_text(json.dumps(make_config(harness, basedir, RABBITMQ_PORT=free_port())))
    result = run("aktool", "migrate", config=broken)
    assert result.returncode == 1 and "aktool migrate: failed" in result.stderr


def test_config_check_lists_every_problem(basedir):
    path = basedir / "main.json"
    path.write_text(json.dumps({
        "PRIVATE_KEY": "short", "WEBAPI_PRIVATE_KEY": "w" * 40,
        "RABBITMQ_PORT": "5672", "CLICKHOUSE_SYSTEM": {"PORT": 99999}, "NEW_THING": 1,
    }))
    result = run("aktool", "config", "check", str(path))
    assert result.returncode == 2
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert sorted(errors) == sorted([
        "error: PRIVATE_KEY: secret too short: 5 characters, at least 32 required",
        "error: TRACKING_CRYPT_KEY: missing (required)",
        "error: RABBITMQ_PORT: wrong type: expected integer, got string",
        "error: CLICKHOUSE_SYSTEM.PORT: not a TCP port: 99999 (expected 1-65535)",
    ])
    # unknown keys are reported once the config is otherwise valid; here the errors win
    assert "short" not in result.stdout.replace("too short", "")
