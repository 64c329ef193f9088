"""The ClickHouse DDL on a current ClickHouse engine (chdb embeds one in-process).

The same DDL runs against the real ClickHouse 18.16 server in the integration tests, so
between the two the SQL is proven on the oldest and the newest server we meet.
"""


from altcraft.schema.clickhouse import EVENTS, TABLES
from altcraft.stores.analytics import FEATURES, parse_version



class ModernServer:
    """Stands in for Analytics with a current server version (for DDL rendering only)."""

    database = "altcraft_system"
    cluster = None  # one server

    def table(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def supports(self, feature: str) -> bool:
        return (26, 9) >= FEATURES[feature]


class OldServer(ModernServer):
    def supports(self, feature: str) -> bool:
        return (18, 16, 1) >= FEATURES[feature]


def test_parse_version():
    assert parse_version("18.16.1") == (18, 16, 1)
    assert parse_version("24.8.4.13") == (24, 8, 4, 13)
    assert parse_version("23.3.1.2823-lts") == (23, 3, 1, 2823)


def test_low_cardinality_only_where_supported():
    assert "LowCardinality(String)" in EVENTS.create_sql(ModernServer())
    assert "LowCardinality" not in EVENTS.create_sql(OldServer())


def test_ddl_runs_on_a_current_clickhouse(tmp_path):
    from chdb import session

    sess = session.Session(str(tmp_path / "chdb"))
    try:
        sess.query("CREATE DATABASE IF NOT EXISTS altcraft_system")
        for table in TABLES:
            sess.query(table.create_sql(ModernServer()))
            sess.query(table.create_sql(ModernServer()))  # IF NOT EXISTS: a rerun is harmless
        sess.query(
            "INSERT INTO altcraft_system.events (event_id, event_time, account_id, kind, campaign_id) "
            "VALUES (generateUUIDv4(), now(), 1, 'open', 7), (generateUUIDv4(), now(), 1, 'click', 7)"
        )
        result = sess.query(
            "SELECT kind, count() FROM altcraft_system.events FINAL GROUP BY kind ORDER BY kind", "CSV"
        )
        assert str(result).split() == ['"click",1', '"open",1']
    finally:
        sess.close()
