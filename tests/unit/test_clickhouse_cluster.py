"""CLICKHOUSE_SYSTEM.CLUSTER: validation, the DDL it renders (parsed by a current ClickHouse,
chdb), and Analytics.insert retrying the identical block. The DDL runs for real on two
18.16 replicas in tests/integration/test_clickhouse_replicas.py."""

from __future__ import annotations

import pytest
from clickhouse_driver import errors as ch_errors

from altcraft import config as cfg
from altcraft.config import ClickHouseCluster
from altcraft.schema import clickhouse as schema
from altcraft.stores import analytics
from altcraft.stores.analytics import FEATURES

SECRET = "x" * 32


def _errors(section: dict) -> dict[str, str]:
    config, report = cfg.validate({"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET,
                                   "TRACKING_CRYPT_KEY": SECRET, "CLICKHOUSE_SYSTEM": section})
    return {issue.key: issue.message for issue in report.errors}


def test_cluster_setting_is_validated():
    assert _errors({"CLUSTER": {"NAME": "altcraft", "REPLICATED": True, "ALT_HOSTS": ["ch2:9000"]}}) == {}
    errors = _errors({"CLUSTER": {"NAME": "my cluster; DROP", "ALT_HOSTS": ["ch2", "ch3:70000"]}})
    assert errors["CLICKHOUSE_SYSTEM.CLUSTER.NAME"].startswith("not an identifier")
    assert errors["CLICKHOUSE_SYSTEM.CLUSTER.ALT_HOSTS[0]"] == "not host:port"
    assert "not a TCP port" in errors["CLICKHOUSE_SYSTEM.CLUSTER.ALT_HOSTS[1]"]
    assert "CLICKHOUSE_SYSTEM.CLUSTER.NAME" in _errors({"CLUSTER": {"REPLICATED": False}})
    assert "CLICKHOUSE_SYSTEM.CLUSTER.REPLICATED" in _errors({"CLUSTER": {"NAME": "c", "REPLICATED": "yes"}})


class Store:
    database = "altcraft_system"

    def __init__(self, cluster: ClickHouseCluster | None):
        self.cluster = cluster

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def supports(self, feature: str) -> bool:
        return (26, 9) >= FEATURES[feature]


def test_replicated_cluster_ddl():
    store = Store(ClickHouseCluster(NAME="altcraft"))
    local = schema.EVENTS.create_sql(store)
    assert local.startswith("CREATE TABLE IF NOT EXISTS `altcraft_system`.`events_local` ON CLUSTER altcraft (")
    assert ("ENGINE = ReplicatedReplacingMergeTree("
            "'/clickhouse/tables/{shard}/altcraft_system.events_local', '{replica}')") in local
    dist = schema.EVENTS.distributed_sql(store)
    assert dist.startswith("CREATE TABLE IF NOT EXISTS `altcraft_system`.`events` ON CLUSTER altcraft (")
    assert dist.endswith("ENGINE = Distributed(altcraft, 'altcraft_system', 'events_local', cityHash64(event_id))")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/altcraft_system.audit_local'" in \
        schema.AUDIT.create_sql(store)


def test_unreplicated_cluster_and_one_server_ddl():
    plain = Store(ClickHouseCluster(NAME="altcraft", REPLICATED=False))
    assert "ENGINE = ReplacingMergeTree()" in schema.EVENTS.create_sql(plain)
    assert "`events_local` ON CLUSTER altcraft" in schema.EVENTS.create_sql(plain)
    one = schema.EVENTS.create_sql(Store(None))
    assert "ON CLUSTER" not in one and "`altcraft_system`.`events` (" in one
    assert "ENGINE = ReplacingMergeTree()" in one


def test_cluster_ddl_parses_on_a_current_clickhouse(tmp_path):
    from chdb import session

    store = Store(ClickHouseCluster(NAME="altcraft"))
    sess = session.Session(str(tmp_path / "chdb"))
    try:
        for table in schema.TABLES:
            statements = ((table.create_sql(store),) if isinstance(table, schema.View)
                          else (table.create_sql(store), table.distributed_sql(store)))
            for sql in statements:
                ast = str(sess.query(f"EXPLAIN AST {sql}", "TSV"))
                assert "CreateQuery" in ast, sql
        view = schema.VIEWS[0].create_sql(store)  # on the local tables, on every server
        assert "ON CLUSTER altcraft TO `altcraft_system`.`campaign_hourly_local`" in view
        assert "FROM `altcraft_system`.`events_local`" in view
    finally:
        sess.close()


class FlakyClient:
    def __init__(self, failures: list[BaseException]):
        self.failures = failures
        self.sent: list[list] = []
        self.disconnects = 0

    def execute(self, sql, rows, settings=None, columnar=False):
        self.sent.append(rows)
        if self.failures:
            raise self.failures.pop(0)
        return len(rows)

    def disconnect(self):
        self.disconnects += 1


def _store_with(client: FlakyClient, cluster: ClickHouseCluster | None = ClickHouseCluster(NAME="c")
                ) -> analytics.Analytics:
    store = analytics.Analytics.__new__(analytics.Analytics)
    store.database, store.cluster, store._client = "db", cluster, client
    return store


def test_insert_retries_the_identical_block(monkeypatch):
    monkeypatch.setattr(analytics.time, "sleep", lambda s: None)
    client = FlakyClient([EOFError("server gone"),
                          ch_errors.ServerException("no keeper", code=ch_errors.ErrorCodes.KEEPER_EXCEPTION)])
    rows = iter([(1, "a"), (2, "b"), (3, "c")])  # a generator: consumed once, sent three times
    assert _store_with(client).insert("events", ("n", "s"), rows) == 3
    assert client.sent == [[(1, "a"), (2, "b"), (3, "c")]] * 3
    assert client.disconnects == 2


def test_insert_gives_up_and_does_not_retry_what_cannot_pass(monkeypatch):
    monkeypatch.setattr(analytics.time, "sleep", lambda s: None)
    client = FlakyClient([ch_errors.ServerException("bad type", code=ch_errors.ErrorCodes.TYPE_MISMATCH)])
    with pytest.raises(ch_errors.ServerException):
        _store_with(client).insert("events", ("n",), [(1,)])
    assert len(client.sent) == 1
    client = FlakyClient([EOFError()] * analytics.INSERT_ATTEMPTS)
    with pytest.raises(EOFError):
        _store_with(client).insert("events", ("n",), [(1,)])
    assert len(client.sent) == analytics.INSERT_ATTEMPTS


def test_insert_is_not_retried_where_nothing_drops_a_copy(monkeypatch):
    """One server, or a cluster of plain MergeTree: a retry whose first attempt landed would
    be kept twice, so the error goes to the caller (the broker redelivers the batch)."""
    monkeypatch.setattr(analytics.time, "sleep", lambda s: None)
    for cluster in (None, ClickHouseCluster(NAME="c", REPLICATED=False)):
        client = FlakyClient([EOFError()])
        with pytest.raises(EOFError):
            _store_with(client, cluster).insert("events", ("n",), [(1,)])
        assert len(client.sent) == 1
