"""aktool backup against the real servers: fill a platform, back up, wipe every store of
the test's configuration, restore, and find every count and checksum again, and a campaign
paused before the backup finishes after the restore without mailing anyone twice; a damaged
byte is found and refused; a killed run never looks complete.

The profile count comes from ALTCRAFT_BACKUP_PROFILES (default 2,000; the issue's full
size, documented in docs/operations.md and README.md):

    ALTCRAFT_BACKUP_PROFILES=100000 tests/run tests/integration/test_backup.py -k wipe_restore

The key-value roles run on a Redis server of the test's own (the shared harness Redis
holds other tests' platform keys under the same `ak:` prefix), and PostgreSQL on a
database of the test's own: wiping them touches nobody else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pika
import psycopg
import pytest
import redis

from altcraft import config as cfg
from altcraft import registry
from altcraft.backup import clickhouse as ch_dump
from altcraft.backup import kv as kv_dump
from altcraft.backup import mongo as mongo_dump
from altcraft.backup import runner
from altcraft.domain.events import Event
from altcraft.schema.clickhouse import TABLES
from altcraft.domain.ingest import EventWriter
from altcraft.domain.maintenance import COLLECTION as MAINTENANCE_COLLECTION
from altcraft.domain.maintenance import Maintenance
from altcraft.domain.reports import HourlyStats, Reports
from altcraft.domain.stoplist import StopList
from altcraft.schema import migrate as migration
from altcraft.schema import rabbitmq as topology
from altcraft.services.api import create_app
from altcraft.stores import analytics, documents, kv
from altcraft.stores.broker import Broker
from altcraft.wiring import Platform
from tests.lib.api import Client
from tests.lib.backup import deliveries, documents_elsewhere, drop_documents_and_events
from tests.lib.cli import BIN, run
from tests.lib.harness import make_config
from tests.lib.ports import free_port
from tests.lib.sink import Sink
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration
PROFILES = int(os.environ.get("ALTCRAFT_BACKUP_PROFILES", "2000"))  # both accounts together
SECOND = PROFILES * 2 // 5  # the second account's; the paused campaign mails them
FIRST = PROFILES - SECOND
FINISHED_AUDIENCE = 50  # the finished campaign's segment: score below this
SENDING = max(300, SECOND // 50)  # seconds allowed to mail or write half the second account
AKTOOL = max(300, PROFILES // 50)  # seconds allowed to one backup or restore of them all


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of this test's own (the harness's Debian redis-server binary)."""
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), timeout=20, what="the private redis-server")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def private_pg(harness):
    pg = harness["postgresql"]
    name = f"bk_{uuid.uuid4().hex[:10]}"
    admin = dict(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"], dbname=pg["database"])
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def bk_config(harness, basedir, vhost, private_redis, private_pg, sink_port):
    kv_settings = {"ENGINE": "redis", "NODES": [{"HOST": "127.0.0.1", "PORT": private_redis}]}
    # all mail to the test's SMTP sink; the campaign worker publishes while akmtad's queue
    # holds less than half the second account (so it can be paused halfway)
    mta = {"ROUTES": {"*": f"127.0.0.1:{sink_port}"}, "TRY_TLS": False, "SPOOL_DIR": str(basedir / "spool"),
           "RETRY": {"TYPE": "fixed", "INTERVAL_SECONDS": 2, "MAX_ATTEMPTS": 5}}
    data = make_config(harness, basedir, RABBITMQ_VHOST=vhost, CAMP_DUPLICATESDB=kv_settings,
                       PROCWORKFLOW_DISTRIBUTED_CACHE_DB=kv_settings, MTA=mta,
                       TRACKING_BASE_URL="https://click.example.test", CAMP_QUEUE_LIMIT=max(1, SECOND // 2),
                       PROCESSES={"akmtad": {"PORT": free_port()}})
    for role in ("ACTIONS", "HBSUPP", "NOTIFY", "STATS"):
        data[f"SSDB_{role}_PORT"] = private_redis
    data["POSTGRESQL"]["DATABASE"] = private_pg
    data["AKD"]["START_SECONDS"] = 1  # akd start returns once a process has lived 1 s
    documents_elsewhere(data)
    path = basedir / "main.json"
    path.write_text(json.dumps(data, indent=2))
    config, _ = cfg.load(path)
    migration.apply(config)  # as installed: desired state and the ledger of migrations
    yield config, path
    run("akd", "stop", config=path)
    _drop_everything(config)


def _event(kind, account, db, campaign, profile, when, **extra) -> Event:
    return Event(event_id=uuid.uuid4(), kind=kind, time=when, account_id=account, db_id=db, resource_id=1,
                 campaign_id=campaign, profile_id=profile, **extra)


def fill(config) -> dict:
    """Two accounts with profiles, a sender (DKIM key), a second sender with MTA settings
    (relay, sending IPs), a virtual sender, a campaign with events in two months, a second
    campaign (not started), stop-list entries, de-duplication keys with a TTL, PostgreSQL
    rows, spool files."""
    p = Platform(config)
    facts: dict = {"accounts": []}
    try:
        sender = p.senders.save(name="news", from_email="news@shop.example", dkim_algorithm="ed25519")
        relayed = p.senders.save(name="relayed", from_email="info@relay.example", dkim_algorithm="none",
                                 relay="relay.example:2525", ips=["127.0.0.1"])
        facts["senders"] = (sender["id"], relayed["id"])
        for n, size in ((1, FIRST), (2, SECOND)):
            account = p.accounts.save(name=f"backup-{n}-{uuid.uuid4().hex[:6]}")
            p.senders.assign(sender["id"], account["id"])
            p.senders.assign(relayed["id"], account["id"])
            database = p.databases(account["id"]).add("main", "email", [{"name": "score", "type": "integer"}])
            store = p.profiles(account["id"], database.id)
            rows = [{"email": f"u{i:05d}.{n}@example{i % 5}.test", "score": i, "first_name": "Anna\tMaria"}
                    for i in range(size)]
            for start in range(0, size, 5000):
                store.upsert_prepared([store.prepare(r, require_key=True) for r in rows[start:start + 5000]],
                                      subscribe=(1, "email"))
            facts["accounts"].append((account["id"], database.id))
        account_id, db_id = facts["accounts"][0]
        vsender = p.vsenders.add(account_id, "routing", [
            {"match": "to_domain", "values": ["example0.test"], "senders": [{"id": relayed["id"], "weight": 1}]},
            {"match": "default", "senders": [{"id": sender["id"], "weight": 3}, {"id": relayed["id"], "weight": 1}]}])
        facts["vsender"] = vsender["id"]
        segment = p.segments(account_id).add("first", db_id, {"field": "score", "op": "lt",
                                                              "value": FINISHED_AUDIENCE})
        template = p.templates(account_id).add("promo", "Hi", "<p>Hi {{ first_name }}</p>", "Hi")
        campaign = p.campaigns.add(account_id, "promo", db_id, segment["id"], template["id"], sender["id"])
        facts["campaign"] = campaign["id"]
        second_account, second_db = facts["accounts"][1]
        everyone = p.segments(second_account).add("everyone", second_db, {})
        letter = p.templates(second_account).add("letter", "Hello", "<p>Hello {{ first_name }}</p>", "Hello")
        facts["paused"] = p.campaigns.add(second_account, "letter", second_db, everyone["id"], letter["id"],
                                          sender["id"])["id"]
        profiles = [d["_id"] for d in p.profiles(account_id, db_id).collection.find({}, {"_id": 1}).limit(300)]
        stoplist = StopList(kv.ssdb(config, "hbsupp"))
        for i in range(20):
            stoplist.add(f"blocked{i}@example.test", "manual")
        store = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
        writer = EventWriter(store, lambda a, d: p.profiles(a, d), stoplist, HourlyStats(kv.ssdb(config, "stats")))
        now = datetime.now(timezone.utc).replace(microsecond=0)
        last_month = now - timedelta(days=40)
        events = []
        for i, profile in enumerate(profiles):
            when = last_month if i % 3 == 0 else now - timedelta(minutes=i % 50)
            events.append(_event("delivered", account_id, db_id, campaign["id"], profile, when, sender_id=sender["id"]))
            if i % 2 == 0:
                events.append(_event("open", account_id, db_id, campaign["id"], profile, when + timedelta(minutes=1),
                                     user_agent="Mozilla/5.0 (X11)\\ \"quoted\"\ttab"))
            if i % 5 == 0:
                events.append(_event("click", account_id, db_id, campaign["id"], profile, when + timedelta(minutes=2),
                                     link_id=1, url="https://shop.example/a?x=1&y=\u00e9", user_agent="Mozilla/5.0"))
        events.append(_event("bounced_hard", account_id, db_id, campaign["id"], profiles[-1], now,
                             email="u00001.1@example1.test"))
        writer.write(events)
        writer.refresh_stats(force=True)
        store.close()
        facts["events"] = len(events)
        facts["months"] = {f"{event.time:%Y%m}" for event in events}  # two, or three near a month's start
        dedup = kv.from_cluster("camp_duplicatesdb", config.CAMP_DUPLICATESDB)
        facts["dedup_key"] = f"ak:camp:{campaign['id']}:1:{profiles[0]}"
        dedup.client.set(facts["dedup_key"], 1, ex=86400)
        dedup.client.set("foreign:key", "not the platform's")  # stays out of the backup
        # every type the dump knows, binary names and values, a fractional score, order in a list
        dedup.client.sadd(b"ak:backup:set:\xff", b"\x00\xff", "member")
        dedup.client.rpush("ak:backup:list", "x", b"\x00\n", "x")
        dedup.client.zadd("ak:backup:zset", {"a": 0.1, b"\xfe": -2.5})
    finally:
        p.close()
    with psycopg.connect(host=config.POSTGRESQL.HOST, port=config.POSTGRESQL.PORT, user=config.POSTGRESQL.USER,
                         password=config.POSTGRESQL.PASSWORD, dbname=config.POSTGRESQL.DATABASE) as conn:
        conn.execute("CREATE TABLE market_orders (id serial PRIMARY KEY, note text)")
        conn.execute("INSERT INTO market_orders (note) SELECT 'order ' || g FROM generate_series(1, 500) g")
    spool = runner.spool_dir(config)
    (spool / "queue").mkdir(parents=True)
    for i in range(3):
        (spool / "queue" / f"msg{i}.eml").write_bytes(f"Message-ID: <{i}@x>\r\n\r\nbody {i}\r\n".encode())
    return facts


def _drop_everything(config) -> None:
    """Wipes every store of this test's configuration (and only of it)."""
    drop_documents_and_events(config)
    for endpoint in kv_dump.endpoints(config):
        endpoint.client().flushall()  # the test's own Redis
    connection = pika.BlockingConnection(pika.ConnectionParameters(
        config.RABBITMQ_HOST, config.RABBITMQ_PORT, config.RABBITMQ_VHOST,
        pika.PlainCredentials(config.RABBITMQ_USER, config.RABBITMQ_PASS)))
    channel = connection.channel()
    for name in ("events.actions", "events.delivery", "events.dead", "akmta_1", "akmta_prior_1", "akmta_2",
                 "akmta_prior_2"):
        channel.queue_delete(name)
    for name in ("altcraft.events", "altcraft.dead"):
        channel.exchange_delete(name)
    connection.close()
    pg = config.POSTGRESQL
    with psycopg.connect(host=pg.HOST, port=pg.PORT, user=pg.USER, password=pg.PASSWORD, dbname=pg.DATABASE) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    shutil.rmtree(runner.spool_dir(config), ignore_errors=True)


def _second_account_emails() -> set[str]:
    return {f"u{i:05d}.2@example{i % 5}.test" for i in range(SECOND)}


def _progress(p, account_id, campaign_id) -> dict:
    return p.campaigns.get(account_id, campaign_id)["progress"] or {}


def send_then_pause(config, main_json, sink, facts) -> set[str]:
    """Through akd's campaign worker, akmtad and procactions to the SMTP sink: the first
    campaign sent to the end; the second published while akmtad is stopped, so publishing
    stops at CAMP_QUEUE_LIMIT (half its audience), paused there, and what it published
    delivered and written to ClickHouse. Every process is stopped afterwards (nothing in
    flight: the backup then holds the whole state). Returns whom the second one mailed."""
    p = Platform(config)
    (first_account, _), (second_account, _) = facts["accounts"]
    try:
        p.campaigns.start(first_account, facts["campaign"])
        assert run("akd", "start", "campaign", "akmtad", "procactions", config=main_json).returncode == 0
        wait_for(lambda: p.campaigns.get(first_account, facts["campaign"])["state"] == "finished", 120,
                 "the first campaign to finish")
        mailed_first = _progress(p, first_account, facts["campaign"])["published"]
        assert mailed_first > 0
        sink.wait_for(mailed_first, timeout=120)
        assert run("akd", "stop", "akmtad", config=main_json).returncode == 0
        p.campaigns.start(second_account, facts["paused"])
        wait_for(lambda: _progress(p, second_account, facts["paused"]).get("published", 0) >= config.CAMP_QUEUE_LIMIT,
                 SENDING, "the second campaign to publish half its audience")
        assert p.campaigns.pause(second_account, facts["paused"])["state"] == "paused"
        assert run("akd", "start", "akmtad", config=main_json).returncode == 0
        published = _progress(p, second_account, facts["paused"])["published"]
        assert 0 < published < SECOND, (published, SECOND)
        sink.wait_for(mailed_first + published, timeout=SENDING)
        wait_for(lambda: len(deliveries(config, facts["paused"])) == published, SENDING,
                 "procactions to write the delivery events")
        assert run("akd", "stop", config=main_json).returncode == 0
        with Broker(config) as broker:
            assert broker.queue_depth(f"akmta_{facts['senders'][0]}") == 0
    finally:
        p.close()
    mailed = [m.rcpt for m in sink.messages if m.rcpt.split("@")[0].endswith(".2")]
    assert len(mailed) == len(set(mailed)) == published and set(mailed) <= _second_account_emails()
    return set(mailed)


def resume_the_paused_campaign(config, main_json, sink_port, facts, mailed_before: set[str]) -> None:
    """Resumed on the restored platform, the paused campaign mails every profile it had not
    mailed, each once, and nobody it mailed before the backup (by the sink and by ClickHouse)."""
    p = Platform(config)
    _, (second_account, _) = facts["accounts"]
    remaining = _second_account_emails() - mailed_before
    try:
        with Sink(sink_port) as sink:
            assert p.campaigns.get(second_account, facts["paused"])["state"] == "paused"
            p.campaigns.resume(second_account, facts["paused"])
            assert run("akd", "start", "campaign", "akmtad", "procactions", config=main_json).returncode == 0
            wait_for(lambda: p.campaigns.get(second_account, facts["paused"])["state"] == "finished", SENDING,
                     "the resumed campaign to finish")
            sink.wait_for(len(remaining), timeout=SENDING)
            wait_for(lambda: sum(deliveries(config, facts["paused"]).values()) >= SECOND, SENDING,
                     "procactions to write the delivery events")
            # stopped, with nothing left queued or spooled: no message can still arrive
            assert run("akd", "stop", config=main_json).returncode == 0
            with Broker(config) as broker:
                assert broker.queue_depth(f"akmta_{facts['senders'][0]}") == 0
            assert not list(runner.spool_dir(config).glob("*.msg"))
            rcpts = [m.rcpt for m in sink.messages]
    finally:
        p.close()
    assert len(rcpts) == len(set(rcpts)), "a profile was mailed twice after the restore"
    assert not set(rcpts) & mailed_before, "a profile mailed before the backup was mailed again"
    assert set(rcpts) == remaining
    by_profile = deliveries(config, facts["paused"])
    assert len(by_profile) == SECOND and set(by_profile.values()) == {1}, \
        f"{len(by_profile)} profiles delivered of {SECOND}; counts {sorted(set(by_profile.values()))}"


def _live_digests(config, data) -> dict:
    """Counts and checksums of the live stores, computed here (not by runner.compare)."""
    out = {}
    for role, section in data["stores"]["mongodb"].items():
        client = documents.connect(config, role)
        for name in section["databases"]:
            out[("mongodb", name)] = mongo_dump.digest_database(client, name)
            out[("indexes", name)] = mongo_dump.index_names(client, name)
        client.close()
    out["clickhouse"] = ch_dump.digest_tables(config.CLICKHOUSE_SYSTEM)
    out["kv"] = {e.name: kv_dump.digest_endpoint(e) for e in kv_dump.endpoints(config)}
    return out


def check_tsv_read_by_clickhouse_18_16_and_current(config, harness, target: Path) -> None:
    """The TSV files load into ClickHouse 18.16 with its own client and into a current
    ClickHouse (chdb), and both read exactly what the backup wrote."""
    data = json.loads((target / "manifest.json").read_text())
    entry = data["stores"]["clickhouse"]["tables"]["events"]
    ch = harness["clickhouse"]
    db = config.CLICKHOUSE_SYSTEM.DATABASE_NAME
    create = (target / "clickhouse" / "events.sql").read_text().replace(f"{db}.events", f"{db}.events_copy", 1)
    base = ["clickhouse-client", "--host", ch["host"], "--port", str(ch["port"]), "--user", ch["user"],
            "--password", ch["password"]]
    subprocess.run(base + ["--query", create], check=True, capture_output=True)
    for name in entry["partitions"]:
        with open(target / "clickhouse" / "events" / name, "rb") as f:
            subprocess.run(base + ["--query", f"INSERT INTO {db}.events_copy FORMAT TabSeparated"],
                           stdin=f, check=True, capture_output=True)
    # ClickHouse 18.16 parsed every row exactly as the backup wrote it
    copy = ch_dump.digest_tables(config.CLICKHOUSE_SYSTEM)["events_copy"]
    assert copy == {"count": entry["count"], "checksum": entry["checksum"]}
    # and a current ClickHouse (chdb, the embedded engine) reads the same files
    import chdb

    columns = json.loads((target / "clickhouse" / "events.columns.json").read_text())
    structure = ", ".join(f"{name} {kind}" for name, kind in columns)
    summary = "count(), sum(cityHash64(toString(event_id), url, user_agent, toString(event_time)))"
    current = chdb.query(f"SELECT {summary} FROM file('{target}/clickhouse/events/*.tsv', 'TabSeparated', "
                         f"'{structure}')", "CSV").bytes().decode().strip()
    store = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
    (count, total), = store.execute(f"SELECT {summary} FROM {db}.events FINAL")
    store.close()
    assert current == f"{count},{total}" and count == entry["count"]


@pytest.mark.timeout(max(600, PROFILES * 36 // 1000))  # an hour at 100,000 profiles
def test_backup_wipe_restore_equals_the_manifest(bk_config, tmp_path, harness, sink_port):
    """The issue's whole chain: a filled platform with a finished campaign and one paused
    halfway, backed up, every store wiped, restored: every count and checksum equals the
    manifest's, and the paused campaign, resumed, mails the rest once each."""
    config, main_json = bk_config
    facts = fill(config)
    sent_from = datetime.now(timezone.utc)
    with Sink(sink_port) as sink:
        mailed_before = send_then_pause(config, main_json, sink, facts)
    facts["report"] = Reports(analytics.Analytics(config.CLICKHOUSE_SYSTEM)).campaign(facts["accounts"][0][0],
                                                                                     facts["campaign"])
    before = _live_digests(config, {"stores": {"mongodb": {
        "control": {"databases": {config.CONTROLDB_NAME: {}}},
        "account": {"databases": {n: {} for n in runner.account_databases(
            documents.connect(config, "account"), config)}}}}})
    target = tmp_path / "backup"

    created = run("aktool", "backup", "create", "--to", str(target), "--json", config=main_json,
                  timeout=AKTOOL)
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)["manifest"]
    assert data["platform_version"] and data["started_at"] <= data["finished_at"]
    assert set(data["stores"]) == set(runner.STORES)
    account_dbs = data["stores"]["mongodb"]["account"]["databases"]
    assert len(account_dbs) == 2
    assert sorted(c["profiles_1"]["count"] for c in account_dbs.values()) == sorted([FIRST, SECOND])
    events = data["stores"]["clickhouse"]["tables"]["events"]
    # the events written by fill(), and the delivery events of the two campaigns' messages
    assert events["count"] >= facts["events"] + len(mailed_before)
    # a partition a month: the filled events' months and those of the campaign's deliveries
    months = facts["months"] | {f"{moment:%Y%m}" for moment in (sent_from, datetime.now(timezone.utc))}
    assert {part["partition"] for part in events["partitions"].values()} == months
    keyspace, = data["stores"]["kv"]["keyspaces"].values()
    assert set(keyspace["roles"]) == {"camp_duplicatesdb", "procworkflow_cache", "ssdb_actions",
                                      "ssdb_hbsupp", "ssdb_notify", "ssdb_stats"}
    assert keyspace["families"]["ak:stoplist"] == 1 and keyspace["families"]["ak:camp"] >= 1
    assert keyspace["families"]["ak:stats"] >= 2 and keyspace["families"]["ak:backup"] == 3
    assert data["stores"]["postgresql"]["tables"]["public.market_orders"]["count"] == 500
    assert data["stores"]["spool"]["count"] == 3
    # the platform's queues (schema/rabbitmq.py) + each sender's two
    assert data["stores"]["rabbitmq"]["queues"] == len(topology.QUEUES) + 4
    # every file is listed with its size and SHA-256; the backup and its secrets are owner-only
    assert data["files"]["secrets/main.json"]["size"] == main_json.stat().st_size
    assert (target.stat().st_mode & 0o777) == 0o700
    assert ((target / "secrets").stat().st_mode & 0o777) == 0o700
    assert ((target / "secrets" / "main.json").stat().st_mode & 0o777) == 0o600
    assert not (target / ".lock").exists()
    assert data["quiet_point"]["maintenance_flag"] is True
    assert "platform_state" not in data["stores"]["mongodb"]["control"]["databases"][config.CONTROLDB_NAME]
    # mongodump's layout, indexes in the metadata
    control_dir = target / "mongodb" / "control" / config.CONTROLDB_NAME
    meta = json.loads((control_dir / "accounts.metadata.json").read_text())
    assert {"id_1_uniq", "name_1_uniq"} <= {i["name"] for i in meta["indexes"]}
    # the digests the manifest holds are what the live stores give
    for name, collections in account_dbs.items():
        assert before[("mongodb", name)] == collections

    assert run("aktool", "backup", "verify", str(target), timeout=AKTOOL).returncode == 0
    check_tsv_read_by_clickhouse_18_16_and_current(config, harness, target)
    # what restore asks about before it overwrites anything
    plan = runner.plan(config, data)
    assert f"mongodb   replace database {config.CONTROLDB_NAME}" in plan
    assert all(f"mongodb   replace database {name}" in plan for name in account_dbs)
    assert f"clickhouse replace table {config.CLICKHOUSE_SYSTEM.DATABASE_NAME}.events" in plan
    assert any(line.startswith("kv        replace keys ak:*") for line in plan)
    listed = json.loads(run("aktool", "backup", "list", "--root", str(tmp_path), "--json",
                            config=main_json).stdout)["backups"]
    assert [(b["name"], b["state"]) for b in listed] == [("backup", "complete")]

    _drop_everything(config)
    assert analytics.Analytics(config.CLICKHOUSE_SYSTEM).execute(
        "SELECT count() FROM system.databases WHERE name = %(d)s", {"d": config.CLICKHOUSE_SYSTEM.DATABASE_NAME}) == [(0,)]

    refused = run("aktool", "backup", "restore", str(target), config=main_json)
    assert refused.returncode == 2 and "--yes" in refused.stderr  # never overwrites unasked
    restored = run("aktool", "backup", "restore", str(target), "--yes", "--json", config=main_json, timeout=AKTOOL)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    answer = json.loads(restored.stdout)
    assert {k: answer[k] for k in ("ok", "mismatches", "secrets_differ", "moved", "migrations_applied")} == {
        "ok": True, "mismatches": [], "secrets_differ": [], "moved": [], "migrations_applied": []}
    assert answer["schema_versions"] == data["schema_versions"] == {"mongodb": 1, "clickhouse": 1, "rabbitmq": 1}

    after = _live_digests(config, data)
    for name, collections in account_dbs.items():
        assert after[("mongodb", name)] == collections
        assert after[("indexes", name)] == before[("indexes", name)]
    # the restore journals itself afterwards (one audit claim, the journal's head in counters);
    # everything else of the control database is the backup's
    journaled = ("audit_chain", "counters")
    saved = data["stores"]["mongodb"]["control"]["databases"][config.CONTROLDB_NAME]
    live = after[("mongodb", config.CONTROLDB_NAME)]
    assert {k: v for k, v in live.items() if k not in journaled} == \
        {k: v for k, v in saved.items() if k not in journaled}
    assert live["audit_chain"]["count"] == saved.get("audit_chain", {"count": 0})["count"] + 1
    assert live["counters"]["count"] in (saved["counters"]["count"], saved["counters"]["count"] + 1)
    # (platform_state: the processes' membership and the maintenance flag, this run's own
    # transient state, never in a backup)
    assert {k: v for k, v in after[("indexes", config.CONTROLDB_NAME)].items() if k != "audit_chain"} == \
        {k: v for k, v in before[("indexes", config.CONTROLDB_NAME)].items()
         if k not in ("audit_chain", MAINTENANCE_COLLECTION)}
    assert after["clickhouse"]["events"] == {"count": events["count"], "checksum": events["checksum"]}
    assert after["kv"][keyspace["target"].replace(":", "_").replace("/", "_")] == \
        {"count": keyspace["count"], "checksum": keyspace["checksum"]}
    # and through the domain: the campaign report, the stop list, the TTL, a foreign key left alone
    report = Reports(analytics.Analytics(config.CLICKHOUSE_SYSTEM)).campaign(facts["accounts"][0][0], facts["campaign"])
    assert report == facts["report"]
    stoplist = StopList(kv.ssdb(config, "hbsupp"))
    assert stoplist.contains("blocked7@example.test") and stoplist.contains("u00001.1@example1.test")
    client = kv.from_cluster("camp_duplicatesdb", config.CAMP_DUPLICATESDB).client
    assert 0 < client.ttl(facts["dedup_key"]) <= 86400
    assert client.get("foreign:key") is None  # wiped by the test, not restored: never in the backup
    assert client.smembers(b"ak:backup:set:\xff") == {b"\x00\xff", b"member"}
    assert client.lrange("ak:backup:list", 0, -1) == [b"x", b"\x00\n", b"x"]
    assert client.zrange("ak:backup:zset", 0, -1, withscores=True) == [(b"\xfe", -2.5), (b"a", 0.1)]
    assert len(os.listdir(runner.spool_dir(config) / "queue")) == 3
    assert run("aktool", "migrate", "--json", config=main_json).stdout.count('"action"') == 0
    # restored again over the restored platform (tables swapped in, keys replaced): the same
    again = run("aktool", "backup", "restore", str(target), "--yes", "--json", config=main_json, timeout=AKTOOL)
    assert again.returncode == 0 and json.loads(again.stdout)["ok"] is True, again.stdout + again.stderr
    store = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
    assert sorted(r[0] for r in store.execute("SELECT name FROM system.tables WHERE database = %(d)s",
                                              {"d": store.database})) == sorted(t.name for t in TABLES)  # no staging table left
    store.close()
    # the senders' MTA settings and the virtual sender came back with the control database
    platform = Platform(config)
    relayed = platform.senders.get(facts["senders"][1])
    assert (relayed["relay"], relayed["ips"]) == ("relay.example:2525", ["127.0.0.1"])
    assert platform.vsenders.get(facts["accounts"][0][0], facts["vsender"])["rules"][0]["values"] == ["example0.test"]
    platform.close()
    resume_the_paused_campaign(config, main_json, sink_port, facts, mailed_before)


def test_a_damaged_byte_fails_verify_and_restore_refuses(bk_config, tmp_path):
    """Also: another version is refused; a restore into a configuration of other names follows them."""
    config, main_json = bk_config
    fill(config)
    target = tmp_path / "backup"
    assert run("aktool", "backup", "create", "--to", str(target), config=main_json).returncode == 0
    data = json.loads((target / "manifest.json").read_text())
    for rel in ("mongodb/account/" + next(iter(data["stores"]["mongodb"]["account"]["databases"])) + "/profiles_1.bson",
                "clickhouse/events/00000.tsv", "kv/" + next(iter(data["stores"]["kv"]["keyspaces"])) + ".jsonl.gz"):
        damaged = tmp_path / "damaged"
        shutil.copytree(target, damaged)
        path = damaged / rel
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
        verified = run("aktool", "backup", "verify", str(damaged))
        assert verified.returncode == 1 and rel in verified.stderr, verified.stderr
        if rel.endswith(".bson"):
            control = documents.connect(config, "control")
            accounts_before = control[config.CONTROLDB_NAME]["accounts"].count_documents({})
            refused = run("aktool", "backup", "restore", str(damaged), "--yes", config=main_json)
            assert refused.returncode == 2 and rel in refused.stderr, refused.stderr
            assert control[config.CONTROLDB_NAME]["accounts"].count_documents({}) == accounts_before
            control.close()
        shutil.rmtree(damaged)
    # --restore-test: the MongoDB, ClickHouse and spool parts restored into scratch names,
    # compared, dropped again; the live data untouched
    live_before = _live_digests(config, data)
    tested = run("aktool", "backup", "verify", str(target), "--restore-test", "--json", config=main_json, timeout=300)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert json.loads(tested.stdout)["restore_test"] == {"mismatches": []}
    client = documents.connect(config, "control")
    assert not [n for n in client.list_database_names() if "restoretest" in n]
    client.close()
    store = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
    assert store.execute("SELECT count() FROM system.databases WHERE name LIKE '%restoretest%'") == [(0,)]
    store.close()
    assert _live_digests(config, data) == live_before
    # a backup of another platform version is refused unless --migrate
    other = tmp_path / "other-version"
    shutil.copytree(target, other)
    data["platform_version"] = "0.0.1"
    (other / "manifest.json").write_text(json.dumps(data))
    refused = run("aktool", "backup", "restore", str(other), "--yes", config=main_json)
    assert refused.returncode == 2 and "version 0.0.1" in refused.stderr and "--migrate" in refused.stderr
    shutil.rmtree(other)
    # restored into another configuration (other database names, prefix, BASEDIR): the names follow it
    other_data = json.loads(main_json.read_text())
    tag = uuid.uuid4().hex[:8]
    other_data.update({"CONTROLDB_NAME": f"control_moved_{tag}", "ACCOUNTDB_PREFIX": f"m{tag}_account_",
                       "BASEDIR": str(tmp_path / "moved")})
    other_data["CLICKHOUSE_SYSTEM"]["DATABASE_NAME"] = f"altcraft_moved_{tag}"
    (tmp_path / "moved").mkdir()
    moved_json = tmp_path / "moved" / "main.json"
    moved_json.write_text(json.dumps(other_data))
    moved, _ = cfg.load(moved_json)
    try:
        result = run("aktool", "backup", "restore", str(target), "--yes", "--json", config=moved_json, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["ok"] is True
        client = documents.connect(moved, "account")
        assert len(runner.account_databases(client, moved)) == 2
        client.close()
        moved_platform = Platform(moved)
        assert moved_platform.accounts.list()[1] == 2  # (page, total): the control DB under its new name
        moved_platform.close()
        assert len(os.listdir(runner.spool_dir(moved) / "queue")) == 3
    finally:
        _drop_everything(moved)
    # a file the manifest does not know, and a missing one
    extra = tmp_path / "extra"
    shutil.copytree(target, extra)
    (extra / "clickhouse" / "stray.tsv").write_text("x\n")
    (extra / "rabbitmq" / "definitions.json").unlink()
    verified = run("aktool", "backup", "verify", str(extra), "--json")
    problems = {p["file"]: p["problem"] for p in json.loads(verified.stdout)["problems"]}
    assert verified.returncode == 1
    assert problems == {"clickhouse/stray.tsv": "not in the manifest", "rabbitmq/definitions.json": "missing"}


def test_kill_9_in_the_middle_leaves_nothing_complete(bk_config, tmp_path):
    config, main_json = bk_config
    fill(config)
    root = tmp_path / "backups"
    target = root / "killed"
    platform = Platform(config)
    api = Client(create_app(config, registry.get("api")).test_client(), platform.tokens.create("admin")[0])
    assert api("admin/accounts/save", name="before-the-backup")[0] == 200
    proc = subprocess.Popen([str(BIN / "aktool"), "backup", "create", "--to", str(target), "--lease", "6",
                             "--config", str(main_json)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the moment the account databases are being written: mid-run, long before the manifest;
    # frozen there (SIGSTOP), so the run cannot finish while the test looks at it
    wait_for(lambda: (target / "mongodb" / "account").exists() or proc.poll() is not None,
             timeout=60, every=0.005, what="the backup to reach the account databases")
    os.kill(proc.pid, signal.SIGSTOP)
    assert proc.poll() is None and not (target / "manifest.json").exists(), "the backup finished too early"
    # the quiet point: the API refuses writes with a clear error, reads go on (the flag's
    # lease, renewed every 2 s, has at least 4 s left)
    time.sleep(1.1)  # the API reads the flag at most once a second
    status, body = api("admin/accounts/save", name="during-the-backup")
    assert (status, body["error"]) == (503, 503) and body["error_text"].startswith("maintenance: backup in progress")
    assert api("admin/accounts/list/")[0] == 200
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (target / "manifest.json").exists()
    # killed, it renews the lease no more: the platform resumes by itself within the lease
    wait_for(lambda: Maintenance(platform.control).active() is None, timeout=15, what="the flag to lapse")
    time.sleep(1.1)
    assert api("admin/accounts/save", name="after-the-kill")[0] == 200
    listed = json.loads(run("aktool", "backup", "list", "--root", str(root), "--json", config=main_json).stdout)
    assert [(b["name"], b["state"]) for b in listed["backups"]] == [("killed", "incomplete")]
    verified = run("aktool", "backup", "verify", str(target))
    assert verified.returncode == 1 and "manifest.json" in verified.stderr
    assert run("aktool", "backup", "restore", str(target), "--yes", config=main_json).returncode == 2
    # a complete run next to it; prune takes the dead one away and keeps the complete one
    assert run("aktool", "backup", "create", "--to", str(root / "good"), config=main_json).returncode == 0
    pruned = json.loads(run("aktool", "backup", "prune", "--keep", "1", "--root", str(root), "--json",
                            config=main_json).stdout)
    assert pruned["removed"] == [str(target)]
    assert [p.name for p in root.iterdir()] == ["good"]

    # Ctrl-C: exit 130, an incomplete directory, the flag cleared at once (not left to lapse)
    interrupted = root / "interrupted"
    # as typed in a terminal: a runner started in the background (job control off) passes
    # SIGINT on ignored, and an ignored SIGINT stays ignored in the child
    proc = subprocess.Popen([str(BIN / "aktool"), "backup", "create", "--to", str(interrupted),
                             "--config", str(main_json)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: (interrupted / "mongodb" / "account").exists() or proc.poll() is not None,
             timeout=60, every=0.005, what="the backup to reach the account databases")
    os.kill(proc.pid, signal.SIGSTOP)
    assert proc.poll() is None and not (interrupted / "manifest.json").exists(), "the backup finished too early"
    proc.send_signal(signal.SIGINT)  # delivered when it runs on
    os.kill(proc.pid, signal.SIGCONT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr
    assert {b["name"]: b["state"] for b in runner.list_backups(root)} == {"good": "complete", "interrupted": "incomplete"}
    assert Maintenance(platform.control).active() is None
    platform.close()


def test_a_failing_store_is_named_and_leaves_no_manifest(bk_config, tmp_path, basedir):
    config, main_json = bk_config
    data = json.loads(main_json.read_text())
    data["CLICKHOUSE_SYSTEM"]["PORT"] = free_port()  # nothing listens there
    broken = basedir / "broken.json"
    broken.write_text(json.dumps(data))
    target = tmp_path / "backup"
    result = run("aktool", "backup", "create", "--to", str(target), config=broken)
    assert result.returncode == 1
    assert "store clickhouse" in result.stderr
    assert not (target / "manifest.json").exists()
    assert runner.list_backups(tmp_path)[0]["state"] == "incomplete"
    # the quiet point ended with the failure: the flag is cleared, not left to lapse
    platform = Platform(config)
    assert platform.control["platform_state"].count_documents({}) == 0
    platform.close()


def test_the_maintenance_flag_has_one_holder_and_lapses_with_its_lease(config):
    from altcraft.domain.errors import Conflict

    client = documents.connect(config, "control")
    control = documents.control_db(client, config)
    now = [1000.0]
    flag = Maintenance(control, clock=lambda: now[0])
    token = flag.begin("backup", "host-a:1", lease_seconds=30)
    assert flag.active()["owner"] == "host-a:1"
    with pytest.raises(Conflict, match="host-a:1"):
        flag.begin("another backup", "host-b:2", lease_seconds=30)
    now[0] += 20
    assert flag.renew(token, 30)  # lives until 1050 now
    now[0] += 29
    assert flag.active() is not None
    now[0] += 2  # the holder stopped renewing: the lease ran out
    assert flag.active() is None
    other = flag.begin("another backup", "host-b:2", lease_seconds=30)  # a lapsed flag is taken over
    assert not flag.renew(token, 30)  # the first holder's token no longer counts
    flag.end(token)
    assert flag.active()["owner"] == "host-b:2"
    flag.end(other)
    assert flag.active() is None
    client.drop_database(config.CONTROLDB_NAME)
    client.close()


@pytest.fixture
def light_config(harness, basedir, vhost):
    """A platform of its own names (control database, vhost) with nothing in it: for runs
    that are killed before they read much."""
    data = make_config(harness, basedir, RABBITMQ_VHOST=vhost)
    path = basedir / "main.json"
    path.write_text(json.dumps(data, indent=2))
    config, _ = cfg.load(path)
    yield config, path
    client = documents.connect(config, "control")
    client.drop_database(config.CONTROLDB_NAME)
    client.close()


def test_kill_9_of_create_then_akd_status_resumes_the_platform(light_config, tmp_path):
    """kill -9 of `aktool backup create` while a store is being dumped: nothing is listed as
    complete, and the next `akd status` sees the flag's owner is gone and clears the flag (the
    lease, 30 s by default, has not run out yet), so the API accepts writes again at once."""
    from tests.lib.backup import RunningBackup

    config, main_json = light_config
    root = tmp_path / "backups"
    platform = Platform(config)
    api = Client(create_app(config, registry.get("api")).test_client(), platform.tokens.create("admin")[0])
    backup = RunningBackup(root / "killed", main_json)
    backup.wait_line("mongodb: dumping")
    os.kill(backup.proc.pid, signal.SIGKILL)
    backup.proc.wait()
    assert not (root / "killed" / "manifest.json").exists(), "the backup finished before the kill"
    listed = json.loads(run("aktool", "backup", "list", "--root", str(root), "--json", config=main_json).stdout)
    assert [(b["name"], b["state"]) for b in listed["backups"]] == [("killed", "incomplete")]
    # the flag is still there (its lease has most of its 30 s left) and writes are refused
    assert Maintenance(platform.control).active()["owner"].endswith(f":{backup.proc.pid}")
    status, body = wait_for(lambda: (r := api("admin/accounts/save", name="during"))[0] == 503 and r,
                            timeout=5, what="the API to see the flag")
    assert body["error"] == 503
    result = run("akd", "status", config=main_json)
    assert f"maintenance flag cleared: set by {socket.gethostname()}:{backup.proc.pid}" in result.stdout, \
        result.stdout + result.stderr
    assert f"its process {backup.proc.pid} is gone" in result.stdout
    assert Maintenance(platform.control).active() is None
    wait_for(lambda: api("admin/accounts/save", name="after-akd-status")[0] == 200, timeout=5,
             what="the API to accept a write")
    # a second akd status has nothing to say about it
    assert "maintenance" not in run("akd", "status", config=main_json).stdout
    # killed again: the next backup on this host takes the dead run's flag over itself
    again = RunningBackup(root / "killed-again", main_json)
    again.wait_line("mongodb: dumping")
    os.kill(again.proc.pid, signal.SIGKILL)
    again.proc.wait()
    assert Maintenance(platform.control).active()["owner"].endswith(f":{again.proc.pid}")
    after = run("aktool", "backup", "create", "--to", str(root / "after"), "--only", "spool", config=main_json)
    assert after.returncode == 0, after.stderr
    assert Maintenance(platform.control).active() is None
    platform.close()


def test_an_encrypted_secrets_part_needs_its_key(light_config, tmp_path):
    """--encrypt-key: the secrets part is one AES-GCM file; verify and restore say clearly
    when the key is missing or wrong, and work with the right one."""
    config, main_json = light_config
    key, other = tmp_path / "backup.key", tmp_path / "other.key"
    assert run("aktool", "backup", "keygen", str(key)).returncode == 0
    assert run("aktool", "backup", "keygen", str(other)).returncode == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    assert run("aktool", "backup", "keygen", str(key)).returncode == 2  # never overwritten
    target = tmp_path / "enc"
    created = run("aktool", "backup", "create", "--to", str(target), "--only", "secrets", "--encrypt-key", str(key),
                  "--json", config=main_json)
    assert created.returncode == 0, created.stderr
    assert sorted(p.name for p in (target / "secrets").iterdir()) == ["secrets.tar.enc"]
    assert b"TRACKING_CRYPT_KEY" not in (target / "secrets" / "secrets.tar.enc").read_bytes()
    missing = run("aktool", "backup", "verify", str(target))
    assert missing.returncode == 1 and "encrypted" in missing.stderr and "--encrypt-key" in missing.stderr
    wrong = run("aktool", "backup", "verify", str(target), "--encrypt-key", str(other))
    assert wrong.returncode == 1 and "wrong key" in wrong.stderr
    assert run("aktool", "backup", "verify", str(target), "--encrypt-key", str(key)).returncode == 0
    refused = run("aktool", "backup", "restore", str(target), "--yes", config=main_json)
    assert refused.returncode == 2 and "--encrypt-key" in refused.stderr
    restored = run("aktool", "backup", "restore", str(target), "--yes", "--encrypt-key", str(key), "--json",
                   config=main_json)
    assert restored.returncode == 0 and json.loads(restored.stdout)["secrets_differ"] == [], restored.stderr
    # a damaged byte: the right key, and it says the file is damaged
    blob = bytearray((target / "secrets" / "secrets.tar.enc").read_bytes())
    blob[-20] ^= 1
    (target / "secrets" / "secrets.tar.enc").write_bytes(bytes(blob))
    data = json.loads((target / "manifest.json").read_text())
    data["files"]["secrets/secrets.tar.enc"]["sha256"] = __import__("hashlib").sha256(bytes(blob)).hexdigest()
    (target / "manifest.json").write_text(json.dumps(data))
    damaged = run("aktool", "backup", "verify", str(target), "--encrypt-key", str(key))
    assert damaged.returncode == 1 and "damaged" in damaged.stderr
