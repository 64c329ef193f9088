"""The key-value store in MODE sentinel follows a failover (issue 17, fail-safe scheme).

Real Redis 7.0: a primary (kv1), its replica (kv2) and three Sentinels (quorum 2) on loopback
(tests/lib/redis_sentinel.py). The platform's own wiring writes: the campaign worker's
de-duplication keys (campaign.LaunchRecord on kv.from_cluster of CAMP_DUPLICATESDB) and
akmtad's done keys (akmtad.KvDoneKeys on kv.async_from_cluster), and the stop list (SSDB hbsupp
on the redis engine, kv.ssdb under SSDB_SENTINEL). kv1 is frozen and killed with SIGKILL while
all three write. The contract: the caller sees no error - a command that meets the dead
primary is retried by the client (kv._FailoverRetry) until the sentinels have promoted kv2,
and the same client objects then write to and read from kv2. Every write acknowledged to the
caller is on the new primary. kv1, restarted with its old configuration (it says "primary"),
is turned into kv2's replica by the sentinels and receives what was written meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import redis

from altcraft import config as cfg
from altcraft.backup import kv as kv_backup
from altcraft.mta import envelope as mta_envelope
from altcraft.services.akmtad import KvDoneKeys
from altcraft.domain.stoplist import KEY as STOPLIST_KEY, StopList, contact_hash
from altcraft.services.campaign import LaunchRecord
from altcraft.stores import checks, kv
from tests.lib.harness import make_config
from tests.lib.redis_sentinel import SentinelSet, start_sentinel_set
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration
BATCH = 50


@pytest.fixture(scope="module")
def sentinel_set():
    set_ = start_sentinel_set()
    yield set_
    set_.stop()


@pytest.fixture
def main_config(harness, basedir, sentinel_set: SentinelSet):
    # the Kvrocks store and, as the redis engine serves it, the SSDB stop list (hbsupp) under
    # the same sentinels
    sentinels = sentinel_set.settings()
    data = make_config(harness, basedir, CAMP_DUPLICATESDB=sentinel_set.settings(FAILOVER_WAIT_SECONDS=20.0),
                       SSDB_ENGINE="redis", SSDB_HBSUPP_PASS=sentinel_set.password,
                       SSDB_SENTINEL={"SENTINELS": sentinels["SENTINELS"],
                                      "SENTINEL_PASSWORD": sentinels["SENTINEL_PASSWORD"],
                                      "MASTERS": {"HBSUPP": sentinels["SENTINEL_MASTER"]},
                                      "FAILOVER_WAIT_SECONDS": 20.0})
    config, report = cfg.validate(data)
    assert config is not None, report.as_dict()
    return config


class Writer(threading.Thread):
    """Writes without pause while `go` is set, counting what its caller sees."""

    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self.go = threading.Event()
        self.stop = threading.Event()
        self.acknowledged: list = []
        self.errors: list[BaseException] = []

    def halt(self) -> None:
        self.stop.set()
        self.go.set()
        self.join(60)
        assert not self.is_alive(), f"{self.name} still writing"


class DedupWriter(Writer):
    """The campaign worker's de-duplication keys: LaunchRecord on kv.from_cluster's client."""

    def __init__(self, record: LaunchRecord):
        super().__init__("dedup-keys")
        self.record = record

    def run(self) -> None:
        batch = 0
        while self.go.wait() and not self.stop.is_set():
            try:
                self.record.mark(_profiles(batch))
                assert self.record.handled(_profiles(batch)) == [True] * BATCH
                self.acknowledged.append(batch)
            except (redis.RedisError, OSError) as exc:  # counted: the contract is that there are none
                self.errors.append(exc)
            batch += 1


class StopListWriter(Writer):
    """The stop list (SSDB hbsupp on the redis engine): StopList on kv.ssdb's client."""

    def __init__(self, config):
        super().__init__("stop-list")
        self.stoplist = StopList(kv.ssdb(config, "hbsupp"))

    def run(self) -> None:
        n = 0
        while self.go.wait() and not self.stop.is_set():
            contact = f"listed-{n}@example.test"
            try:
                self.stoplist.add(contact)
                assert self.stoplist.contains(contact)
                self.acknowledged.append(contact)
            except (redis.RedisError, OSError) as exc:  # counted: the contract is that there are none
                self.errors.append(exc)
            n += 1


class DoneWriter(Writer):
    """akmtad's done keys: KvDoneKeys on kv.async_from_cluster's client, on an asyncio loop."""

    def __init__(self, config):
        super().__init__("done-keys")
        self.config = config

    def run(self) -> None:
        asyncio.run(self._write())

    async def _write(self) -> None:
        done = KvDoneKeys(self.config)
        try:
            n = 0
            while not self.stop.is_set():
                if not self.go.is_set():
                    await asyncio.sleep(0.01)
                    continue
                message_id = f"sentinel-test-{n}"
                try:
                    await done.mark_done(message_id)
                    self.acknowledged.append(message_id)
                except Exception as exc:  # counted: the contract is that there are none
                    self.errors.append(exc)
                n += 1
        finally:
            await done.aclose()


def _profiles(batch: int) -> list[str]:
    return [f"p{batch:04d}{i:03d}" for i in range(BATCH)]


def test_the_store_follows_a_failover_and_the_old_primary_rejoins(main_config, sentinel_set: SentinelSet):
    started = time.monotonic()
    settings = main_config.CAMP_DUPLICATESDB
    store = kv.from_cluster("camp_duplicatesdb", settings)
    kv1_port, kv2_port = sentinel_set.servers["kv1"].port, sentinel_set.servers["kv2"].port
    checked = checks.run(main_config, only=["camp_duplicatesdb"])[0]
    assert checked.ok and checked.target.startswith("sentinel altcraft-kv@127.0.0.1:")
    assert checked.detail == f"redis, sentinel, primary 127.0.0.1:{kv1_port}"

    writers = [DedupWriter(LaunchRecord(store.client, campaign_id=17, launch=1)), DoneWriter(main_config),
               StopListWriter(main_config)]
    for w in writers:
        w.start()
        w.go.set()
    wait_for(lambda: all(len(w.acknowledged) >= 3 for w in writers), timeout=10, what="the writers writing")
    for w in writers:
        w.go.clear()
    # Replication is asynchronous (docs/operations.md): what the primary acknowledged survives
    # its death only once it is on the replica. The writers hold; a marker written and WAITed
    # for here follows their last writes in the replication stream.
    with sentinel_set.client("kv1") as c:
        c.set("ak:test:marker", 1)
        assert c.execute_command("WAIT", 1, 5000) == 1
    # kv1 freezes and then dies with a command of each writer in flight (the connection breaks
    # mid-command, the hardest case for a client), none of them answered
    sentinel_set.freeze("kv1")
    for w in writers:
        w.go.set()
    wait_for(lambda: sentinel_set.pending_requests("kv1") >= 3, timeout=10, what="each writer's command in flight")
    before_kill = [len(w.acknowledged) for w in writers]
    sentinel_set.kill("kv1")
    killed = time.monotonic()
    wait_for(lambda: sentinel_set.primary() == "kv2", timeout=30, what="the sentinels promoting kv2")
    wait_for(lambda: all(len(w.acknowledged) >= n + 3 for w, n in zip(writers, before_kill)), timeout=30,
             what="the same clients writing to the new primary")
    failover_seconds = time.monotonic() - killed
    for w in writers:
        w.halt()

    assert [w.errors for w in writers] == [[], [], []]
    dedup, done, listed = writers
    assert dedup.acknowledged == list(range(len(dedup.acknowledged)))
    assert store.primary() == f"127.0.0.1:{kv2_port}"
    assert sentinel_set.role("kv2") == "master"
    # every write acknowledged to a caller, before and after the kill, is on the new primary
    with sentinel_set.client("kv2") as kv2:
        for b in dedup.acknowledged:
            keys = [mta_envelope.launch_dedup_key(17, 1, p) for p in _profiles(b)]
            assert all(v is not None for v in kv2.mget(keys)), f"batch {b} lost"
        assert all(v is not None for v in kv2.mget([mta_envelope.done_key(m) for m in done.acknowledged]))
        assert all(kv2.hexists(STOPLIST_KEY, contact_hash(c)) for c in listed.acknowledged)
    # the backup reads the key space from the primary the sentinels name now
    endpoint = next(e for e in kv_backup.endpoints(main_config) if "camp_duplicatesdb" in e.roles)
    assert endpoint.port == kv2_port and "ssdb_hbsupp" in endpoint.roles
    for checked in checks.run(main_config, only=["camp_duplicatesdb", "ssdb_hbsupp"]):
        assert checked.ok and checked.detail.endswith(f"primary 127.0.0.1:{kv2_port}"), checked
    checked = checks.run(main_config, only=["camp_duplicatesdb"])[0]
    assert checked.ok and checked.detail.endswith(f"primary 127.0.0.1:{kv2_port}")

    # kv1 comes back with its old file (no replicaof): the sentinels make it kv2's replica
    sentinel_set.start("kv1")
    try:
        # the sentinels wait 8 s (4 hello periods) after the old primary reappears before they
        # convert it; the bound is generous for a loaded machine
        wait_for(lambda: _replica_of(sentinel_set, "kv1", "kv2"), timeout=60, what="kv1 replicating kv2")
    except AssertionError:
        with sentinel_set.client("kv1") as kv1:
            print("kv1:", kv1.info("replication"))
        for name in ("s1", "s2", "s3", "kv1"):
            print(name, sentinel_set.log(name)[-3000:])
        raise
    record = LaunchRecord(store.client, campaign_id=17, launch=1)
    record.mark(_profiles(9999))
    with sentinel_set.client("kv2") as kv2:
        kv2.set("ak:test:marker", 2)
        assert kv2.execute_command("WAIT", 1, 5000) == 1
    with sentinel_set.client("kv1") as kv1:
        assert kv1.get(mta_envelope.launch_dedup_key(17, 1, _profiles(9999)[0])) is not None
        assert kv1.get(mta_envelope.launch_dedup_key(17, 1, _profiles(dedup.acknowledged[-1])[-1])) is not None
    store.close()
    print(f"\nfailover seen by the callers in {failover_seconds:.1f} s; whole test {time.monotonic() - started:.1f} s; "
          f"{len(dedup.acknowledged)} batches, {len(done.acknowledged)} done keys and {len(listed.acknowledged)} "
          "stop-list entries written, 0 errors")


def test_a_plain_client_of_the_first_node_is_refused_after_the_failover(main_config, sentinel_set: SentinelSet):
    """Without the sentinels in between, the first node is written to whatever it is now: after
    the failover above it is a replica and refuses writes (READONLY)."""
    if sentinel_set.primary() != "kv2":
        pytest.fail("runs after the failover test (module order): kv2 must be the primary")
    plain = kv.from_cluster("plain", main_config.CAMP_DUPLICATESDB.model_copy(
        update={"MODE": "standalone", "SENTINELS": [], "SENTINEL_MASTER": ""}))
    with pytest.raises(redis.ReadOnlyError):
        LaunchRecord(plain.client, campaign_id=17, launch=2).mark(_profiles(0))
    plain.close()


def _replica_of(set_: SentinelSet, name: str, primary: str) -> bool:
    with set_.client(name) as c:
        info = c.info("replication")
    return (info.get("role") == "slave" and info.get("master_port") == set_.servers[primary].port
            and info.get("master_link_status") == "up")
