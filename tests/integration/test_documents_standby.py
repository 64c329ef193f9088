"""The documents store's fail-safe stand-in: FerretDB on a PostgreSQL primary with a
streaming standby, and the scripted promotion (roles/postgresql/files/altcraft-pg-promote).

Real servers on loopback (tests/lib/pg_standby.py): both PostgreSQL servers run the
postgresql role's drop-in; documents are written through FerretDB while the primary is
killed with -9; the script refuses to promote while the old primary still takes writes,
promotes once it is gone, and FerretDB pointed at the new primary serves every document
whose insert was acknowledged. Runs in about 15 s here.
"""

from __future__ import annotations

import json
import threading

import pymongo
import pytest

from tests.lib.pg_standby import StandbyPair
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair():
    p = StandbyPair()
    try:
        p.start()
        p.start_ferretdb(p.primary)
        yield p
    finally:
        p.stop()


def status(pair: StandbyPair, server) -> dict:
    done = pair.promote_script(server, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_standby_streams_through_its_slot_and_every_commit_waits_for_it(pair):
    def streaming():
        replicas = status(pair, pair.primary)["replicas"]
        return replicas if replicas and replicas[0]["state"] == "streaming" else None

    replicas = wait_for(streaming, timeout=20, what="the standby streaming")
    assert [r["application_name"] for r in replicas] == ["pg2"]
    # 'quorum': synchronous_standby_names is ANY 1 (...): a commit returns once pg2 has it
    assert replicas[0]["sync_state"] in ("sync", "quorum"), replicas
    assert replicas[0]["lag_bytes"] is not None  # the lag is exposed per replica
    primary = status(pair, pair.primary)
    assert [(s["slot_name"], s["active"]) for s in primary["slots"]] == [("standby_pg2", True)]
    standby = status(pair, pair.standby)
    assert standby["role"] == "standby"
    assert standby["receiver"]["status"] == "streaming"
    assert standby["receiver"]["slot_name"] == "standby_pg2"
    assert standby["replay_behind_bytes"] is not None


def test_replication_state_is_exposed_to_prometheus(pair):
    """What the role's timer writes for the node exporter's textfile collector (the metrics
    the PostgresReplicaLagging and PostgresStandbyDisconnected alerts read)."""
    from prometheus_client.parser import text_string_to_metric_families

    def samples(server) -> dict:
        done = pair.promote_script(server, "metrics")
        assert done.returncode == 0, done.stderr
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(done.stdout) for s in family.samples}

    primary = samples(pair.primary)
    assert primary[("altcraft_postgresql_up", ())] == 1
    assert primary[("altcraft_postgresql_in_recovery", ())] == 0
    assert ("altcraft_postgresql_replica_lag_bytes", (("application_name", "pg2"),)) in primary
    assert primary[("altcraft_postgresql_replication_slot_active", (("slot_name", "standby_pg2"),))] == 1
    standby = samples(pair.standby)
    assert standby[("altcraft_postgresql_in_recovery", ())] == 1
    assert standby[("altcraft_postgresql_standby_receiving", ())] == 1


def test_promotion_is_refused_while_the_old_primary_takes_writes(pair):
    done = pair.promote_script(pair.standby, "promote")
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "still answers as a writable primary" in done.stderr
    assert status(pair, pair.standby)["role"] == "standby"


def test_primary_killed_standby_promoted_and_every_acknowledged_document_served(pair):
    acknowledged: list[int] = []
    stop = threading.Event()
    errors: list[str] = []

    def writer():
        client = pymongo.MongoClient(pair.mongo_uri(), serverSelectionTimeoutMS=2000, socketTimeoutMS=2000,
                                     retryWrites=False)
        coll = client["failover"]["docs"]
        n = 0
        while not stop.is_set():
            try:
                coll.insert_one({"_id": n, "body": f"document {n}"})
                acknowledged.append(n)
            except pymongo.errors.PyMongoError as exc:
                errors.append(type(exc).__name__)
            n += 1
        client.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    wait_for(lambda: len(acknowledged) >= 300, timeout=30, what="300 acknowledged inserts")
    pair.kill(pair.primary)
    wait_for(lambda: len(errors) >= 3, timeout=30, what="inserts failing after the kill")
    stop.set()
    thread.join(15)
    assert len(acknowledged) >= 300

    done = pair.promote_script(pair.standby, "promote", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    answer = json.loads(done.stdout)
    assert answer["changed"] is True and answer["role"] == "primary"
    assert answer["old_primary"]["state"] == "unreachable"

    again = pair.promote_script(pair.standby, "promote", "--json")  # idempotent
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False

    pair.start_ferretdb(pair.standby)  # what playbooks/promote-postgresql.yml does on the documents hosts
    with pymongo.MongoClient(pair.mongo_uri(), serverSelectionTimeoutMS=5000) as client:
        coll = client["failover"]["docs"]
        stored = {d["_id"] for d in coll.find({}, {"_id": 1})}
        missing = sorted(set(acknowledged) - stored)
        assert not missing, f"{len(missing)} acknowledged documents lost, first {missing[:10]}"
        coll.insert_one({"_id": "after-promotion"})  # the new primary takes writes
        assert coll.count_documents({"_id": "after-promotion"}) == 1
