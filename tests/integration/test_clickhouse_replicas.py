"""ClickHouse on two replicas (issue #17, fail-safe scheme), on real servers: one ZooKeeper
and two clickhouse-server processes (tests/lib/ch_cluster.py), the platform's own migration
with CLICKHOUSE_SYSTEM.CLUSTER and its own event writer (domain/ingest.EventWriter over
stores/analytics.Analytics).

The tests share one cluster and its migrated tables; each writes its own account's events."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from altcraft.config import ClickHouseCluster
from altcraft.domain.events import COLUMNS, Event, row
from altcraft.domain.ingest import EventWriter
from altcraft.schema import clickhouse as schema
from altcraft.stores.analytics import Analytics
from tests.lib.ch_cluster import ChCluster
from tests.lib.wait import wait_for

DB = "altcraft_replicas"
CLUSTER = "altcraft"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def running():
    with ChCluster(replicas=2, cluster=CLUSTER) as started:
        yield started


@pytest.fixture(scope="module")
def migrated(running) -> tuple[list, list]:
    """The platform's migration with the cluster setting, run twice: (first, second)."""
    store = _store(running, 0)
    try:
        return schema.migrate(store), schema.migrate(store)
    finally:
        store.close()


@pytest.fixture
def cluster(running, migrated) -> ChCluster:
    return running


def _store(cluster: ChCluster, index: int, alt: bool = False) -> Analytics:
    """The platform's client on replica `index`; with `alt`, the other replica as ALT_HOSTS."""
    others = [f"127.0.0.1:{n.tcp_port}" for i, n in enumerate(cluster.nodes) if i != index] if alt else []
    return Analytics(cluster.settings(cluster.nodes[index], DB,
                                      CLUSTER=ClickHouseCluster(NAME=CLUSTER, ALT_HOSTS=others)))


def _events(n: int, account: int) -> list[Event]:
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    return [Event(event_id=uuid.uuid4(), kind="open" if i % 2 else "delivered", account_id=account,
                  time=start + timedelta(seconds=i), campaign_id=7, profile_id=f"p{i}")
            for i in range(n)]


def _writer(store: Analytics) -> EventWriter:
    # open/delivered only: no profile effects, no statistics (those have their own tests)
    return EventWriter(store, profiles_factory=None, stoplist=None, stats=None)


def _held(cluster: ChCluster, account: int) -> list[tuple[int, int]]:
    """(rows, distinct event ids) of `account` in each replica's own local table."""
    sql = (f"SELECT count(), uniqExact(event_id) FROM `{DB}`.`events{schema.LOCAL_SUFFIX}` "
           f"WHERE account_id = {account}")
    return [tuple(cluster.query(node, sql)[0]) for node in cluster.nodes]


def _sync(cluster: ChCluster) -> None:
    for node in cluster.nodes:
        for table in ("events", "campaign_hourly"):
            cluster.query(node, f"SYSTEM SYNC REPLICA `{DB}`.`{table}{schema.LOCAL_SUFFIX}`")


def test_migration_on_cluster_creates_tables_on_both_replicas(cluster, migrated):
    first, second = migrated
    assert ("table events_local", "create") in first and ("table events", "create") in first
    assert second == []  # a second run has nothing to do
    for node in cluster.nodes:
        engines = dict(cluster.query(node, f"SELECT name, engine FROM system.tables WHERE database = '{DB}'"))
        assert engines == {"events": "Distributed", "events_local": "ReplicatedReplacingMergeTree",
                           "audit": "Distributed", "audit_local": "ReplicatedMergeTree",
                           # the report aggregates: views on the local events into local tables
                           "campaign_hourly": "Distributed", "campaign_hourly_local": "ReplicatedAggregatingMergeTree",
                           "campaign_people": "Distributed", "campaign_people_local": "ReplicatedAggregatingMergeTree",
                           "campaign_hourly_mv": "MaterializedView",
                           "campaign_people_mv": "MaterializedView"}, node.name


def test_written_on_ch1_read_on_ch2(cluster):
    ch1, ch2 = _store(cluster, 0), _store(cluster, 1)
    try:
        _writer(ch1).write(_events(50, account=1))
        _sync(cluster)
        assert ch2.execute(f"SELECT count(), uniqExact(event_id) FROM {ch2.table('events')} "
                           "WHERE account_id = 1") == [(50, 50)]
        # FINAL through the Distributed table: one shard, so every copy of an event is on it
        assert ch2.execute(f"SELECT count() FROM {ch2.table('events')} FINAL WHERE account_id = 1") == [(50,)]
        # the report aggregate, filled by the view on ch1's local table, replicated to ch2
        assert ch2.execute(f"SELECT uniqExactMerge(events) FROM {ch2.table('campaign_hourly')} "
                           "WHERE account_id = 1") == [(50,)]
    finally:
        ch1.close(), ch2.close()


def test_a_retried_block_is_written_once(cluster):
    """The same block sent twice (what Analytics.insert does after an error whose answer was
    lost) is dropped by the replicated table's block de-duplication. Merges are stopped so
    that ReplacingMergeTree cannot hide a doubled block: count() is what was written."""
    for node in cluster.nodes:
        cluster.query(node, f"SYSTEM STOP MERGES `{DB}`.`events{schema.LOCAL_SUFFIX}`")
    ch1 = _store(cluster, 0)
    try:
        rows = [row(e) for e in _events(40, account=2)]
        ch1.insert("events", COLUMNS, rows)
        ch1.insert("events", COLUMNS, list(rows))  # the retry: same rows, same order
        _sync(cluster)
        assert _held(cluster, 2) == [(40, 40), (40, 40)]
    finally:
        ch1.close()
        for node in cluster.nodes:
            cluster.query(node, f"SYSTEM START MERGES `{DB}`.`events{schema.LOCAL_SUFFIX}`")


def test_a_killed_replica_catches_up(cluster):
    """kill -9 ch1 while the platform writes; the writer goes on through ch2's Distributed
    table (its retry reconnects to ALT_HOSTS); ch1 restarted fetches what it missed."""
    ch1_node = cluster.nodes[0]
    writer_store = _store(cluster, 0, alt=True)  # HOST ch1, ALT_HOSTS ch2, as the platform runs
    writer = _writer(writer_store)
    try:
        before = _events(30, account=3)
        writer.write(before)
        cluster.kill(ch1_node)
        during = [_events(20, account=3) for _ in range(3)]
        for batch in during:
            writer.write(batch)  # the client finds ch1 gone and goes on with ALT_HOSTS (ch2)
        # while ch1 is down ch2 holds every event written since; the first 30 may still be
        # on ch1's disk only (replication is asynchronous: no insert_quorum, so that one
        # replica down does not stop the writes), to be fetched when ch1 is back
        on_ch2 = {r[0] for r in cluster.query(
            cluster.nodes[1], f"SELECT event_id FROM `{DB}`.`events{schema.LOCAL_SUFFIX}` WHERE account_id = 3")}
        assert {e.event_id for b in during for e in b} <= on_ch2
        # ch2 sees ch1 gone once its ZooKeeper session expired; a ch1 started before that
        # finds its own is_active node and retries only ~10 s later (18.16)
        wait_for(lambda: cluster.query(cluster.nodes[1], "SELECT active_replicas FROM system.replicas "
                                       f"WHERE database = '{DB}' AND table = 'events{schema.LOCAL_SUFFIX}'") == [(1,)],
                 timeout=30, what="ch2 to see ch1's ZooKeeper session expire")
        cluster.restart(ch1_node)
        wait_for(lambda: _held(cluster, 3) == [(90, 90), (90, 90)], timeout=60,
                 what="ch1 to fetch the parts written while it was down")
        written = {e.event_id for e in before} | {e.event_id for b in during for e in b}
        for node in cluster.nodes:
            ids = {r[0] for r in cluster.query(
                node, f"SELECT event_id FROM `{DB}`.`events{schema.LOCAL_SUFFIX}` WHERE account_id = 3")}
            assert ids == written, node.name
    finally:
        writer_store.close()
