"""Backup and restore times: `aktool backup`'s create, verify and restore on seeded data.

    .venv/bin/python -m bench.backup [--profiles 20000] [--events 200000] [--keys 20000]   (from the repository root)

Seeds a platform of its own names on the test harness (started if it is not running): one
account with N profiles, M events in ClickHouse over two monthly partitions, K key-value
keys with TTLs (on a Redis server of the benchmark's own, since a restore rewrites every
`ak:*` key of its endpoint), the RabbitMQ definitions of a vhost of its own and a few spool
files. PostgreSQL is left out (the harness database is shared). Then: create (timed per
store, as the manifest records it, with the quiet point), verify (every checksum and dump
read through), restore (timed per store; it includes its own verify, the migration and the
final comparison with the manifest). Prints, per store, MB dumped, backup and restore
seconds and MB/s, and ends with `ratio=<restore/backup>`: restore's total (its verify, the
restoring, the comparison with the manifest and the migration: verification included) over
create's (the backup as the operator runs it). `ratio_with_verify` divides by create plus
a separate `verify`, for those who count the backup's own check on the backup's side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __name__ == "__main__" and not __package__:
    sys.exit("run the benchmarks as modules from the repository root: .venv/bin/python -m bench.backup")

from bench import _config  # noqa: E402
from tests.lib import broker as test_broker  # noqa: E402
from tests.lib.backup import documents_elsewhere, drop_documents_and_events  # noqa: E402
from tests.lib.harness import make_config  # noqa: E402
from tests.lib.ports import free_port  # noqa: E402


class Timer:
    """A backup.runner.Reporter that times each store."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def reporter(self):
        from altcraft.backup.runner import Reporter

        return Reporter(lambda s: self._started.__setitem__(s, time.monotonic()), lambda label, n: None,
                        lambda s: self.seconds.__setitem__(s, time.monotonic() - self._started[s]))


def seed(config, profiles: int, events: int, keys: int) -> None:
    from altcraft.domain.events import COLUMNS, Event, row
    from altcraft.stores import analytics, kv
    from altcraft.wiring import Platform

    p = Platform(config)
    try:
        account = p.accounts.save(name="bench-backup")
        database = p.databases(account["id"]).add("main", "email", [{"name": "score", "type": "integer"}])
        store = p.profiles(account["id"], database.id)
        for start in range(0, profiles, 5000):
            rows = [{"email": f"u{i:07d}@example{i % 7}.test", "score": i, "first_name": "Anna"}
                    for i in range(start, min(profiles, start + 5000))]
            store.upsert_prepared([store.prepare(r, require_key=True) for r in rows], subscribe=(1, "email"))
        ids = [d["_id"] for d in store.collection.find({}, {"_id": 1}).limit(max(1, min(profiles, 10000)))]
    finally:
        p.close()
    ch = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    batch = []
    for i in range(events):
        when = now - timedelta(days=40 if i % 3 == 0 else 0, seconds=i % 86400)
        batch.append(Event(event_id=uuid.uuid4(), kind="open" if i % 2 else "delivered", time=when,
                           account_id=account["id"], db_id=database.id, resource_id=1, campaign_id=1,
                           profile_id=ids[i % len(ids)], user_agent="Mozilla/5.0 (X11; Linux x86_64)"))
        if len(batch) == 20000:
            ch.insert("events", COLUMNS, [row(e) for e in batch])
            batch = []
    if batch:
        ch.insert("events", COLUMNS, [row(e) for e in batch])
    ch.close()
    client = kv.from_cluster("camp_duplicatesdb", config.CAMP_DUPLICATESDB).client
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"ak:camp:1:1:{i:08d}", 1, ex=86400)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    spool = Path(config.MTA.SPOOL_DIR)
    spool.mkdir(parents=True, exist_ok=True)
    for i in range(20):
        (spool / f"m{i}.msg").write_bytes(b"x" * 4096)


def sizes(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for path in root.rglob("*"):
        if path.is_file():
            top = path.relative_to(root).parts[0]
            out[top] = out.get(top, 0) + path.stat().st_size
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=20000)
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--keys", type=int, default=20000)
    args = parser.parse_args()

    from altcraft import config as cfg
    from altcraft.backup import runner
    from altcraft.schema import migrate as migration

    harness = _config.harness()
    basedir = Path(tempfile.mkdtemp(prefix="altcraft-bench-backup-"))
    redis_port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(basedir)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    vhost = test_broker.add_vhost(harness, prefix="bench-")
    kv_settings = {"ENGINE": "redis", "NODES": [{"HOST": "127.0.0.1", "PORT": redis_port}]}
    data = make_config(harness, basedir, RABBITMQ_VHOST=vhost, CAMP_DUPLICATESDB=kv_settings,
                       PROCWORKFLOW_DISTRIBUTED_CACHE_DB=kv_settings, MTA={"SPOOL_DIR": str(basedir / "spool")})
    for role in ("ACTIONS", "HBSUPP", "NOTIFY", "STATS"):
        data[f"SSDB_{role}_PORT"] = redis_port
    data["POSTGRESQL"]["ENABLE"] = False
    documents_elsewhere(data)
    main_json = basedir / "main.json"
    main_json.write_text(json.dumps(data))
    config, _ = cfg.load(main_json)
    try:
        time.sleep(0.5)  # redis-server binding its port
        migration.run(config)
        clock = time.monotonic()
        seed(config, args.profiles, args.events, args.keys)
        print(f"seeded {args.profiles} profiles, {args.events} events, {args.keys} keys "
              f"in {time.monotonic() - clock:.1f} s", flush=True)

        made = Timer()
        clock = time.monotonic()
        target, manifest = runner.create(config, main_json, to=basedir / "backup", report=made.reporter())
        backup_seconds = time.monotonic() - clock
        clock = time.monotonic()
        _, problems = runner.verify(target)
        verify_seconds = time.monotonic() - clock
        assert not problems, problems
        restored = Timer()
        clock = time.monotonic()
        mismatches = runner.restore(config, target, report=restored.reporter())
        restore_seconds = time.monotonic() - clock
        assert not mismatches, mismatches

        size = sizes(target)
        print(f"\n{'store':<11} {'MB':>8} {'backup s':>9} {'MB/s':>7} {'restore s':>10} {'MB/s':>7}")
        for store in manifest["stores"]:
            mb = size.get(store, 0) / 2**20
            b, r = made.seconds.get(store, 0.0), restored.seconds.get(store, 0.0)
            print(f"{store:<11} {mb:>8.1f} {b:>9.2f} {mb / b if b else 0:>7.1f} {r:>10.2f} {mb / r if r else 0:>7.1f}")
        total = sum(size.values()) / 2**20
        quiet = manifest["quiet_point"]
        print(f"\ntotal {total:.1f} MB; create {backup_seconds:.1f} s (quiet window {quiet.get('window_seconds')} s), "
              f"verify {verify_seconds:.1f} s, restore {restore_seconds:.1f} s (its verify, migration and "
              f"comparison included)")
        print(f"ratio={restore_seconds / backup_seconds:.2f} "
              f"ratio_with_verify={restore_seconds / (backup_seconds + verify_seconds):.2f}")
    finally:
        drop_documents_and_events(config)
        redis.terminate()
        redis.wait(timeout=10)
        test_broker.delete_vhost(vhost)
        shutil.rmtree(basedir, ignore_errors=True)


if __name__ == "__main__":
    main()
