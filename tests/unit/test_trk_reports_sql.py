"""Report and statistics SQL on a current ClickHouse engine (chdb, in-process).

The same queries run on the real ClickHouse 18.16 in tests/integration/test_reports.py, so
between the two they are proven on the oldest and the newest server we meet.
"""

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from clickhouse_driver.util.escape import escape_params

from altcraft.domain.events import COLUMNS, Event, row
from altcraft.domain.reports import HourlyStats, Reports, hour_key
from altcraft.schema.clickhouse import TABLES
from altcraft.stores.analytics import FEATURES

T0 = datetime(2026, 11, 22, 10, 30, tzinfo=timezone.utc)


class ChdbStore:
    """Stands in for Analytics: same table naming and parameter substitution, chdb underneath."""

    database = "altcraft_system"
    cluster = None  # one server

    def __init__(self, path):
        from chdb import session
        self.session = session.Session(str(path))
        self.session.query(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        for table in TABLES:
            self.session.query(table.create_sql(self))

    def supports(self, feature):
        return (26, 9) >= FEATURES[feature]

    def table(self, name):
        return f"`{self.database}`.`{name}`"

    def execute(self, sql, params=None):
        if params:
            sql = sql % escape_params(params, None)
        result = self.session.query(sql + " SETTINGS output_format_json_quote_64bit_integers = 0", "JSONCompact")
        raw = result.bytes()
        return [tuple(r) for r in json.loads(raw)["data"]] if raw else []

    def insert(self, table, columns, rows):
        def value(v):
            if isinstance(v, datetime):
                return f"toDateTime({int(v.timestamp())})"
            return str(escape_params({"v": v}, None)["v"])
        values = ", ".join("(" + ", ".join(value(v) for v in r) + ")" for r in rows)
        cols = ", ".join(f"`{c}`" for c in columns)
        self.session.query(f"INSERT INTO {self.table(table)} ({cols}) VALUES {values}")

    def close(self):
        self.session.close()


@pytest.fixture
def store(tmp_path):
    s = ChdbStore(tmp_path / "chdb")
    yield s
    s.close()


def ev(kind, profile, seconds=0, campaign=7, link=0, url="", bot="", event_id=None, account=1):
    return Event(event_id or uuid.uuid4(), kind, T0 + timedelta(seconds=seconds), account, 1, 1, campaign,
                 profile, link_id=link, url=url, is_bot=bool(bot), bot_reason=bot)


def test_campaign_report_counts_each_event_once(store):
    copy_id = uuid.uuid4()
    batch = [
        ev("delivered", "p1"), ev("delivered", "p2"), ev("deferred", "p3"), ev("delivered", "p3", 600),
        ev("bounced_hard", "p4"), ev("bounced_soft", "p5"),
        ev("open", "p1", 60), ev("open", "p1", 3600), ev("open", "p2", 5, bot="apple-mpp"),
        ev("click", "p1", 70, link=1, url="https://a.example/1", event_id=copy_id),
        ev("click", "p1", 70, link=1, url="https://a.example/1", event_id=copy_id),  # redelivered copy
        ev("click", "p1", 80, link=2, url="https://a.example/2"),
        ev("click", "p2", 6, link=1, url="https://a.example/1", bot="click-after-delivery"),
        ev("unsubscribe", "p3", 900),
        ev("open", "p9", 10, campaign=8), ev("click", "p9", 10, campaign=8, link=1),  # another campaign
        ev("open", "p1", 10, account=2),  # another account
    ]
    store.insert("events", COLUMNS, [row(e) for e in batch])
    report = Reports(store).campaign(1, 7)
    assert (report["sent"], report["delivered"], report["deferred"], report["dropped"]) == (5, 3, 1, 0)
    assert report["bounced"] == {"hard": 1, "soft": 1}
    assert report["opened"] == {"unique": {"all": 2, "human": 1}, "total": {"all": 3, "human": 2}}
    assert report["clicked"] == {"unique": {"all": 2, "human": 1}, "total": {"all": 3, "human": 2}}
    assert (report["unsubscribed"], report["resubscribed"], report["complaints"]) == (1, 0, 0)
    assert report["links"] == [
        {"link_id": 1, "url": "https://a.example/1",
         "clicks": {"unique": {"all": 2, "human": 1}, "total": {"all": 2, "human": 1}}},
        {"link_id": 2, "url": "https://a.example/2",
         "clicks": {"unique": {"all": 1, "human": 1}, "total": {"all": 1, "human": 1}}},
    ]
    hours = [slot["hour"] for slot in report["timeline"]]
    assert hours == ["2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z"]
    assert report["timeline"][0]["open"] == {"all": 2, "human": 1}
    assert report["timeline"][1]["open"] == {"all": 1, "human": 1}
    assert Reports(store).campaign(1, 999)["sent"] == 0


class FakeRedis:
    """The few commands HourlyStats uses (strings, hashes, sorted sets: SSDB's subset)."""

    def __init__(self):
        self.hashes, self.zsets = {}, {}

    def pipeline(self, transaction=False):
        return self

    def hset(self, key, mapping):
        self.hashes.setdefault(key, {}).update({k.encode(): str(v).encode() for k, v in mapping.items()})

    def zadd(self, key, mapping):
        self.zsets.setdefault(key, {}).update(mapping)

    def execute(self):
        return []

    def zrangebyscore(self, key, low, high, withscores=False):
        items = sorted((s, m) for m, s in self.zsets.get(key, {}).items() if low <= s <= high)
        return [(m.encode(), float(s)) for s, m in items]

    def hgetall(self, key):
        return dict(self.hashes.get(key, {}))


class FakeKV:
    def __init__(self):
        self.client = FakeRedis()


def test_hourly_stats_are_recomputed_not_incremented(store):
    kv = FakeKV()
    stats = HourlyStats(kv)
    batch = [ev("open", "p1", 0), ev("open", "p2", 1, bot="head"), ev("click", "p1", 2, link=1),
             ev("delivered", "p1", 3700)]
    store.insert("events", COLUMNS, [row(e) for e in batch])
    hour = int(T0.timestamp()) // 3600 * 3600
    touched = {(1, hour), (1, hour + 3600)}
    assert stats.refresh(store, touched) == 2
    assert stats.refresh(store, touched) == 2  # again: the same absolute values
    stored = kv.client.hashes[hour_key(1, hour)]
    assert stored[b"open"] == b"2" and stored[b"open:human"] == b"1" and stored[b"click"] == b"1"
    assert stored[b"delivered"] == b"0"
    rows = stats.get(1, hour, hour + 7200)
    assert rows == [
        {"hour": "2026-11-22T10:00:00Z", "open": {"all": 2, "human": 1}, "click": {"all": 1, "human": 1}},
        {"hour": "2026-11-22T11:00:00Z", "delivered": {"all": 1, "human": 1}},
    ]


def test_the_click_timing_lookup_runs(store):
    from altcraft.domain.ingest import EventWriter

    delivered = ev("delivered", "p1", 0)
    store.insert("events", COLUMNS, [row(delivered)])
    writer = EventWriter(store, lambda a, d: None, None, None)
    click = ev("click", "p1", 1, link=1)
    found = list(writer._stored_before([click], click.time - timedelta(seconds=3), click.time))
    assert found == [(7, "p1", "delivered", T0, delivered.event_id)]
