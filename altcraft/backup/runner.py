"""The backup runs: create, list, verify, prune, restore. The store modules do the work;
this module decides the order, the layout and the manifest.

Layout of one backup directory (0700):
    secrets/main.json, secrets/tls/*         0600 files in a 0700 directory
    mongodb/control/<db>/<coll>.bson|.metadata.json    mongodump's layout
    mongodb/account/<db>/...
    clickhouse/<table>.sql, <table>.columns.json, <table>/<n>.tsv
    kv/<host>_<port>_<db>.jsonl.gz
    rabbitmq/definitions.json
    postgresql/<database>.dump               pg_dump custom format
    spool/akmta.tar
    manifest.json                            last, by atomic rename
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import tempfile
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import uri_parser

import altcraft
from altcraft.backup import clickhouse, files, kv, mongo, postgresql, rabbitmq
from altcraft.backup import manifest as mf
from altcraft.config import MainConfig
from altcraft.domain.maintenance import COLLECTION as MAINTENANCE_COLLECTION
from altcraft.domain.maintenance import Maintenance
from altcraft.stores import documents
from altcraft.stores.analytics import Analytics
from altcraft.stores.broker import Broker

STORES = ("secrets", "mongodb", "clickhouse", "kv", "rabbitmq", "postgresql", "spool")
# the stores the paused processes write together (profiles and checkpoints, events, done and
# de-duplication keys, queues, the spool): dumped inside the quiet window, in this order;
# secrets and PostgreSQL (nothing paused writes them) are dumped outside it
QUIET_STORES = ("mongodb", "clickhouse", "kv", "rabbitmq", "spool")
PRODUCERS = ("campaign", "akmtad")  # the members that stop at the quiet point
EVENT_QUEUES = ("events.actions", "events.delivery")
SCHEMA_NOTE = ("schema_versions: per store the highest numbered migration applied, from the ledger "
               "(control database, schema_migrations); the schema itself travels in each dump")
Tick = Callable[[str, int], None]
PARALLEL = 8  # threads of one restore or comparison: each mostly waits on a server


class StoreFailed(Exception):
    """A store's part of a run failed; `store` names it."""

    def __init__(self, store: str, cause: BaseException):
        self.store = store
        self.cause = cause
        super().__init__(f"{store}: {type(cause).__name__}: {cause}")


class NotQuiet(Exception):
    """The quiet point was not reached in time; the message says who or what was not quiet."""


class Refused(Exception):
    """A run that must not start (damaged backup, other version, running processes...)."""


@dataclass
class Reporter:
    """What a run tells its caller: a store begins, records pass, a store ends."""

    begin: Callable[[str], None] = lambda store: None
    tick: Tick = lambda label, n: None
    end: Callable[[str], None] = lambda store: None


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_root(config: MainConfig) -> Path:
    return config.basedir / "backups"


def spool_dir(config: MainConfig) -> Path:
    return Path(config.MTA.SPOOL_DIR or config.basedir / "spool" / "akmta")


def enabled(config: MainConfig) -> list[str]:
    return [s for s in STORES if s != "postgresql" or config.POSTGRESQL.ENABLE]


def _mongo_target(config: MainConfig, role: str) -> str:
    """host:port list without credentials (the manifest is not a secret file)."""
    nodes = uri_parser.parse_uri(documents.mongo_uri(config, role))["nodelist"]
    return ",".join(f"{h}:{p}" for h, p in nodes)


def account_databases(client, config: MainConfig) -> list[str]:
    prefix = config.ACCOUNTDB_PREFIX
    return sorted(n for n in client.list_database_names()
                  if n.startswith(prefix) and n[len(prefix):].isdigit())


def _sender_ids(config: MainConfig) -> list[int]:
    client = documents.connect(config, "control")
    try:
        senders = documents.control_db(client, config)["senders"]
        return [d["id"] for d in senders.find({"deleted": {"$ne": True}}, {"id": 1}) if "id" in d]
    finally:
        client.close()


def _tls_files(config: MainConfig) -> list[Path]:
    return [Path(p) for p in (config.COOKIESAVER_SSL_CRT_PATH, config.COOKIESAVER_SSL_KEY_PATH) if p]


# -- create ---------------------------------------------------------------------------------
def _dump_store(store: str, config: MainConfig, config_path: Path, root: Path, tick: Tick,
                key: bytes | None = None) -> dict[str, Any]:
    if store == "secrets":
        return files.dump_secrets(config_path, _tls_files(config), root / "secrets", key)
    if store == "mongodb":
        section: dict[str, Any] = {}
        for role in ("control", "account"):
            client = documents.connect(config, role, timeout=10.0)
            try:
                names = [config.CONTROLDB_NAME] if role == "control" else account_databases(client, config)
                section[role] = {
                    "target": _mongo_target(config, role),
                    "prefix": config.ACCOUNTDB_PREFIX if role == "account" else None,
                    # the maintenance flag is this run's own transient state, not the platform's
                    "databases": {n: mongo.dump_database(client, n, root / "mongodb" / role, tick,
                                                         skip=(MAINTENANCE_COLLECTION,) if role == "control" else ())
                                  for n in names},
                }
            finally:
                client.close()
        return section
    if store == "clickhouse":
        return clickhouse.dump(config.CLICKHOUSE_SYSTEM, root / "clickhouse", tick) | {
            "target": f"{config.CLICKHOUSE_SYSTEM.HOST}:{config.CLICKHOUSE_SYSTEM.PORT}"}
    if store == "kv":
        (root / "kv").mkdir()
        return {"keyspaces": {e.name: kv.dump(e, root / "kv" / f"{e.name}.jsonl.gz", tick)
                              for e in kv.endpoints(config)}}
    if store == "rabbitmq":
        (root / "rabbitmq").mkdir()
        with Broker(config, app="aktool-backup") as broker:
            return rabbitmq.dump(broker, config.RABBITMQ_VHOST, _sender_ids(config),
                                 root / "rabbitmq" / "definitions.json") | {
                "target": f"{config.RABBITMQ_HOST}:{config.RABBITMQ_PORT}"}
    if store == "postgresql":
        (root / "postgresql").mkdir()
        pg = config.POSTGRESQL
        return postgresql.dump(pg, root / "postgresql" / "database.dump") | {"target": f"{pg.HOST}:{pg.PORT}"}
    if store == "spool":
        (root / "spool").mkdir()
        return files.dump_spool(spool_dir(config), root / "spool" / "akmta.tar")
    raise ValueError(f"unknown store {store}")


def _schema_versions(config: MainConfig) -> dict[str, int] | None:
    """The ledger's schema version per store; None when the control database is not reached
    (a backup `--only` other stores may still be taken; restore then migrates all)."""
    from altcraft.schema import migrate as migration

    try:
        return migration.schema_versions(config)
    except Exception:  # noqa: BLE001 - the mongodb part, if asked for, fails naming its store
        return None


class QuietPoint:
    """The maintenance flag for the length of a run: set, renewed every third of its lease
    by a thread, cleared at the end whatever happened. A run killed with SIGKILL stops
    renewing and the flag lapses after `lease` seconds: the platform is never left paused."""

    def __init__(self, config: MainConfig, lease: float, reason: str):
        self.config, self.lease, self.reason = config, lease, reason
        self._stop = threading.Event()

    def __enter__(self) -> QuietPoint:
        self.client = documents.connect(self.config, "control")
        self.flag = Maintenance(documents.control_db(self.client, self.config))
        try:
            _clear_abandoned(self.flag, say=lambda text: None)
            self.token = self.flag.begin(self.reason, f"{socket.gethostname()}:{os.getpid()}", self.lease,
                                         owner_started=_process_started())
        except Exception:
            self.client.close()
            raise
        self._thread = threading.Thread(target=self._renew, name="maintenance-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.flag.renew(self.token, self.lease)
            except Exception:  # noqa: BLE001 - a missed renewal only shortens the pause
                pass

    def wait(self, timeout: float, say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
        """Waits until every producer says it is quiet, then until procactions has written
        every event published so far (events.actions and events.delivery drained). Raises
        NotQuiet naming what is not, after `timeout` seconds in all."""
        clock = time.monotonic()
        deadline = clock + timeout
        say("waiting for the campaign worker and akmtad to pause")
        while True:
            members = self.flag.members()
            loud = [m for m in members if m["role"] in PRODUCERS and m.get("quiet") != self.token]
            if not loud:
                break
            if time.monotonic() > deadline:
                raise NotQuiet(f"not paused after {timeout:.0f} s: " + ", ".join(
                    f"{m['role']} {m['owner']}" for m in loud) + " (see their logs; --quiet-timeout to wait longer)")
            time.sleep(0.1)
        paused = time.monotonic()
        say("waiting for procactions to drain events.actions and events.delivery")
        request = self.flag.request_drain(self.token)
        with Broker(self.config, app="aktool-backup") as broker:
            while True:
                why = _not_drained(self.flag, broker, request)
                if why is None:
                    break
                if time.monotonic() > deadline:
                    raise NotQuiet(f"events not drained after {timeout:.0f} s: {why} (--quiet-timeout to wait longer)")
                time.sleep(0.1)
        return {"members": sorted(f"{m['role']} {m['owner']}" for m in members),
                "pause_seconds": round(paused - clock, 3), "drain_seconds": round(time.monotonic() - paused, 3)}

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.flag.end(self.token)
        finally:
            self.client.close()


def _end_quiet(quiet_point: QuietPoint, say: Callable[[str], None]) -> None:
    quiet_point.__exit__(None, None, None)
    say("quiet point over: the platform goes on")


def _clear_abandoned(flag: Maintenance, say: Callable[[str], None]) -> None:
    """A flag left by a run that died on this host (as akd status would clear it)."""
    import psutil

    from altcraft.domain.maintenance import abandoned

    def started(pid: int) -> float | None:
        try:
            return psutil.Process(pid).create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    holder = flag.holder()
    if holder is not None and (why := abandoned(holder, time.time(), socket.gethostname(), started)):
        flag.clear(holder)
        say(f"cleared the maintenance flag of {holder.get('owner')}: {why}")


def _process_started() -> float | None:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - only makes akd status's check less sure
        return None


def _not_drained(flag: Maintenance, broker: Broker, request: int) -> str | None:
    """None once every living procactions answered the drain request (each answers only when
    both queues hold nothing ready and it holds nothing unwritten); else what is missing."""
    workers = flag.members("procactions")
    if workers:
        late = [m["owner"] for m in workers if (m.get("drained") or 0) < request]
        return f"procactions {', '.join(late)} still writing" if late else None
    # no procactions lives: drained only if nothing waits and nobody else consumes
    waiting = []
    for name in EVENT_QUEUES:
        if not broker.exists("queue", name):
            continue
        method = broker.channel.queue_declare(name, passive=True).method
        if method.message_count or method.consumer_count:
            waiting.append(f"{name} holds {method.message_count} ready, {method.consumer_count} consumers")
    return f"no procactions is running and {'; '.join(waiting)}" if waiting else None


def new_dir(root: Path) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = root / stamp
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    return path


def create(config: MainConfig, config_path: Path, to: Path | None = None, only: list[str] | None = None,
           report: Reporter | None = None, quiet: bool = True, lease: float = 30.0,
           quiet_timeout: float = 120.0, say: Callable[[str], None] = lambda text: None,
           key: bytes | None = None) -> tuple[Path, dict[str, Any]]:
    """One backup; returns its directory and manifest. Raises StoreFailed naming the store:
    the directory is then left without a manifest (incomplete, and `list` says so).

    With `quiet`, the stores of QUIET_STORES are dumped inside the quiet window: the flag is
    set, the producers pause, the event queues drain (QuietPoint.wait), the stores are
    dumped, the flag is cleared - also when anything fails (finally; a killed run's flag
    lapses with its lease, or akd status clears it). The others are dumped outside it."""
    report = report or Reporter()
    selected = [s for s in enabled(config) if not only or s in only]
    inside = [s for s in QUIET_STORES if s in selected] if quiet else []
    stores = [s for s in selected if s not in inside and s != "postgresql"] + inside + \
        [s for s in selected if s == "postgresql" and s not in inside]
    unknown = [s for s in (only or []) if s not in STORES]
    if unknown:
        raise Refused(f"unknown store(s): {', '.join(unknown)}; known: {', '.join(STORES)}")
    if only and "postgresql" in only and not config.POSTGRESQL.ENABLE:
        raise Refused("postgresql: not enabled in main.json (POSTGRESQL.ENABLE)")
    target = to or new_dir(default_root(config))
    if target.exists() and any(target.iterdir()):
        raise Refused(f"{target}: exists and is not empty")
    old_umask = os.umask(0o077)  # dumps hold password hashes and DKIM keys: owner only
    try:
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(target, 0o700)
        lock = mf.RunLock(target)
        lock.acquire()
        started = now()
        clock = time.monotonic()
        sections: dict[str, Any] = {}
        timings: dict[str, float] = {}
        quiet_point: Any = None
        quiet_facts: dict[str, Any] = {}
        try:
            versions = _schema_versions(config)
            for store in stores:
                if store in inside and quiet_point is None:
                    window = time.monotonic()
                    try:
                        quiet_point = QuietPoint(config, lease, "backup in progress (aktool backup create)")
                        quiet_point.__enter__()
                    except Exception as exc:
                        quiet_point = None
                        raise StoreFailed("quiet point", exc) from exc
                    try:
                        quiet_facts = quiet_point.wait(quiet_timeout, say)
                    except Exception as exc:
                        raise StoreFailed("quiet point", exc) from exc
                    say("quiet: dumping " + ", ".join(inside))
                if quiet_point is not None and store not in inside:
                    _end_quiet(quiet_point, say)
                    quiet_point = None
                    quiet_facts["window_seconds"] = round(time.monotonic() - window, 3)
                report.begin(store)
                store_clock = time.monotonic()
                try:
                    sections[store] = _dump_store(store, config, config_path, target, report.tick, key)
                except Exception as exc:
                    raise StoreFailed(store, exc) from exc
                timings[store] = round(time.monotonic() - store_clock, 3)
                report.end(store)
            if quiet_point is not None:
                _end_quiet(quiet_point, say)
                quiet_point = None
                quiet_facts["window_seconds"] = round(time.monotonic() - window, 3)
            data = {
                "format": mf.FORMAT,
                "platform_version": altcraft.__version__,
                "schema_versions": versions,
                "schema_note": SCHEMA_NOTE,
                "hosts": {"backup_host": socket.gethostname()},
                "quiet_point": {"maintenance_flag": bool(inside), "lease_seconds": lease if inside else None,
                                "inside": inside,
                                "paused": ["API writes", "campaign publishing", "MTA intake",
                                           "MTA delivery"] if inside else [],
                                "drained": list(EVENT_QUEUES) if inside else [],
                                "not_paused": ["tracking (opens and clicks queue in events.actions)"]
                                if inside else ["everything"], **quiet_facts},
                "started_at": started,
                "finished_at": now(),
                "seconds": round(time.monotonic() - clock, 3),
                "store_seconds": timings,
                "stores": sections,
                "files": {rel: e.as_dict() for rel, e in mf.hash_files(target).items()},
            }
            mf.write_atomic(target, data)
        finally:
            try:
                if quiet_point is not None:
                    _end_quiet(quiet_point, say)
            finally:
                lock.release(remove=(target / mf.MANIFEST).exists())
    finally:
        os.umask(old_umask)
    return target, data


# -- list, verify, prune --------------------------------------------------------------------
def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def list_backups(root: Path) -> list[dict[str, Any]]:
    found = []
    if not root.is_dir():
        return found
    for path in sorted(p for p in root.iterdir() if mf.is_backup_dir(p)):
        state = mf.state(path)
        entry: dict[str, Any] = {"path": str(path), "name": path.name, "state": state, "size": _size(path)}
        if state == "complete":
            data = mf.load(path)
            entry.update({"platform_version": data["platform_version"], "started_at": data["started_at"],
                          "finished_at": data["finished_at"], "stores": sorted(data["stores"])})
        else:
            entry["modified_at"] = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
        found.append(entry)
    return found


def verify(root: Path, key: bytes | None = None) -> tuple[dict[str, Any] | None, list[mf.Problem]]:
    """The manifest, every file's size and SHA-256, and every dump read through and counted
    (an encrypted secrets part decrypted with `key`)."""
    try:
        data = mf.load(root)
    except mf.ManifestError as exc:
        return None, [mf.Problem(mf.MANIFEST, str(exc).split(": ", 1)[-1])]
    problems = mf.check_files(root, data)
    if problems:
        return data, problems  # a damaged file: reading it through would only repeat that

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    stores = data["stores"]
    if "secrets" in stores:
        problems += [mf.Problem(rel(p), m) for p, m in files.check_secrets(root / "secrets", stores["secrets"], key)]
    for role, section in stores.get("mongodb", {}).items():
        for db, collections in section["databases"].items():
            problems += [mf.Problem(rel(p), m) for p, m in
                         mongo.check_readable(root / "mongodb" / role / db, collections)]
    if "clickhouse" in stores:
        problems += [mf.Problem(rel(p), m) for p, m in
                     clickhouse.check_readable(root / "clickhouse", stores["clickhouse"])]
    for name, expected in stores.get("kv", {}).get("keyspaces", {}).items():
        path = root / "kv" / f"{name}.jsonl.gz"
        if (message := kv.check_readable(path, expected)) is not None:
            problems.append(mf.Problem(rel(path), message))
    checks = [("rabbitmq", root / "rabbitmq" / "definitions.json",
               lambda p, e: rabbitmq.check_readable(p, e)),
              ("postgresql", root / "postgresql" / "database.dump", lambda p, e: postgresql.check_readable(p)),
              ("spool", root / "spool" / "akmta.tar", lambda p, e: files.check_spool(p, e))]
    for store, path, check in checks:
        if store in stores and (message := check(path, stores[store])) is not None:
            problems.append(mf.Problem(rel(path), message))
    return data, problems


def prune(root: Path, keep: int | None = None, days: float | None = None,
          dry_run: bool = False) -> list[str]:
    """Removes complete backups beyond the newest `keep` or older than `days`, and
    incomplete ones that no run holds any more. The newest complete backup always stays."""
    entries = list_backups(root)
    complete = sorted((e for e in entries if e["state"] == "complete"), key=lambda e: e["finished_at"], reverse=True)
    doomed: list[str] = [e["path"] for e in entries if e["state"] in ("incomplete", "damaged")]
    cutoff = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ") \
        if days is not None else None
    for index, entry in enumerate(complete):
        if index == 0:
            continue
        if (keep is not None and index >= keep) or (cutoff is not None and entry["finished_at"] < cutoff):
            doomed.append(entry["path"])
    if not dry_run:
        for path in doomed:
            shutil.rmtree(path)
    return doomed


# -- restore --------------------------------------------------------------------------------
def running_processes(config: MainConfig) -> list[str]:
    from altcraft import registry
    from altcraft.akd import control

    return [p.name for p in registry.PROCESSES if control.status(config, p).up]


def plan(config: MainConfig, data: dict[str, Any]) -> list[str]:
    """What a restore would overwrite, one line per target."""
    lines = []
    stores = data["stores"]
    for role, section in stores.get("mongodb", {}).items():
        client = documents.connect(config, role)
        try:
            existing = set(client.list_database_names())
            wanted = [live_db_name(config, role, section, n) for n in section["databases"]]
            extra = set(account_databases(client, config)) - set(wanted) if role == "account" else set()
        finally:
            client.close()
        for name in wanted:
            lines.append(f"mongodb   {'replace' if name in existing else 'create'} database {name}")
        for name in sorted(extra):
            lines.append(f"mongodb   drop database {name} (not in the backup)")
    if "clickhouse" in stores:
        for table in stores["clickhouse"]["tables"]:
            lines.append(f"clickhouse replace table {config.CLICKHOUSE_SYSTEM.DATABASE_NAME}.{table}")
    for name, ks in stores.get("kv", {}).get("keyspaces", {}).items():
        lines.append(f"kv        replace keys {ks['pattern']} on {ks['target']} ({', '.join(ks['roles'])})")
    if "rabbitmq" in stores:
        lines.append(f"rabbitmq  declare exchanges and queues in vhost {config.RABBITMQ_VHOST}")
    if "postgresql" in stores:
        lines.append(f"postgresql replace the objects of the dump in {config.POSTGRESQL.DATABASE}")
    if "spool" in stores:
        lines.append(f"spool     replace {spool_dir(config)}")
    return lines


def live_db_name(config: MainConfig, role: str, section: dict[str, Any], name: str) -> str:
    """The database of this configuration that a dumped database is restored into."""
    if role == "control":
        return config.CONTROLDB_NAME
    prefix = section.get("prefix") or ""
    return config.ACCOUNTDB_PREFIX + name[len(prefix):] if prefix and name.startswith(prefix) else name


def _restore_store(store: str, config: MainConfig, root: Path, section: dict[str, Any], tick: Tick) -> None:
    if store == "secrets":
        return  # compared, never written over the running main.json (see docs/operations.md)
    if store == "mongodb":
        # every database on a thread of its own (FerretDB and MongoDB write databases side by
        # side), and beside them the search for account databases the backup does not have
        clients = {role: documents.connect(config, role, timeout=10.0) for role in section}
        try:
            jobs: list[tuple[str, Callable[[], None]]] = []
            for role, part in section.items():
                client = clients[role]
                if role == "account":
                    wanted = {live_db_name(config, role, part, n) for n in part["databases"]}

                    def drop_extra(client=client, wanted=wanted) -> None:
                        for extra in set(account_databases(client, config)) - wanted:
                            client.drop_database(extra)
                    jobs.append(("extra account databases", drop_extra))
                for name in part["databases"]:
                    jobs.append((name, lambda c=client, r=role, pt=part, n=name: mongo.restore_database(
                        c, live_db_name(config, r, pt, n), root / "mongodb" / r / n, pt["databases"][n], tick)))
            in_parallel(jobs)
        finally:
            for client in clients.values():
                client.close()
    elif store == "clickhouse":
        clickhouse.restore(config.CLICKHOUSE_SYSTEM, root / "clickhouse", section, tick)
    elif store == "kv":
        by_name = {e.name: e for e in kv.endpoints(config)}
        for name, ks in section["keyspaces"].items():
            endpoint = by_name.get(name)
            if endpoint is None:
                roles = set(ks["roles"])
                endpoint = next((e for e in by_name.values() if roles & set(e.roles)), None)
            if endpoint is None:
                raise Refused(f"kv: no endpoint of this configuration serves {', '.join(ks['roles'])}")
            kv.restore(endpoint, root / "kv" / f"{name}.jsonl.gz", tick)
    elif store == "rabbitmq":
        with Broker(config, app="aktool-restore") as broker:
            rabbitmq.restore(broker, root / "rabbitmq" / "definitions.json")
    elif store == "postgresql":
        postgresql.restore(config.POSTGRESQL, root / "postgresql" / "database.dump")
    elif store == "spool":
        files.restore_spool(root / "spool" / "akmta.tar", spool_dir(config))


def in_parallel(jobs: list[tuple[str, Callable[[], Any]]]) -> list[Any]:
    """Runs independent jobs on threads of their own and returns their results in order.
    Each store's part waits mostly on its own server (FerretDB, ClickHouse, Redis...), so
    they overlap instead of adding up. Every job ends before the first failure (in the
    jobs' order) is raised."""
    if len(jobs) <= 1:
        return [job() for _, job in jobs]
    pool = ThreadPoolExecutor(max_workers=min(len(jobs), PARALLEL), thread_name_prefix="backup")
    futures = [pool.submit(job) for _, job in jobs]
    try:
        # short waits: a Ctrl-C taken by one of the job threads still reaches this (main)
        # thread within a fraction of a second, as KeyboardInterrupt, not after every job
        while wait(futures, timeout=0.2).not_done:
            pass
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # jobs not started never start
        raise
    pool.shutdown(wait=True)
    for future in futures:
        if (exc := future.exception()) is not None:
            raise exc
    return [future.result() for future in futures]


def _restore_stores(config: MainConfig, root: Path, stores: dict[str, Any], report: Reporter) -> None:
    """Every store of the backup restored at once, each on its own thread."""
    def one(store: str) -> Callable[[], None]:
        def run() -> None:
            report.begin(store)
            try:
                _restore_store(store, config, root, stores[store], report.tick)
            except Refused:
                raise
            except Exception as exc:
                raise StoreFailed(store, exc) from exc
            report.end(store)
        return run

    in_parallel([(store, one(store)) for store in STORES if store in stores])


def secrets_match(config: MainConfig, root: Path, key: bytes | None = None) -> list[str]:
    """The generated secrets that differ between the backup's main.json and the running one."""
    import json

    section = mf.load(root)["stores"]["secrets"]
    saved = json.loads(files.read_secrets(root / "secrets", section, key)["main.json"])
    return [k for k in ("PRIVATE_KEY", "WEBAPI_PRIVATE_KEY", "TRACKING_CRYPT_KEY")
            if saved.get(k) != getattr(config, k)]


def restore(config: MainConfig, root: Path, *, allow_other_version: bool = False,
            report: Reporter | None = None, check_processes: bool = True,
            on_migrated: Callable[[Any], None] | None = None, key: bytes | None = None) -> list[str]:
    """Verifies, restores every store of the backup, compares, migrates. Returns the
    mismatches of the comparison (empty: the stores equal the manifest). The comparison
    comes before the migrations: a backup of an older schema is restored exactly, then the
    migrations it lacks are applied (and handed to `on_migrated`), as after an upgrade."""
    from altcraft.schema import migrate as migration
    from altcraft.schema import migrations as numbered

    report = report or Reporter()
    data, problems = verify(root, key)
    if problems:
        raise Refused("the backup is damaged: " + "; ".join(str(p) for p in problems))
    assert data is not None
    if data["platform_version"] != altcraft.__version__ and not allow_other_version:
        raise Refused(f"the backup is of platform version {data['platform_version']}, this is "
                      f"{altcraft.__version__}: restore it with the same version, or pass --migrate")
    if newer := numbered.too_new(data.get("schema_versions") or {}):
        raise Refused(f"the backup's schema is newer than this version ({'; '.join(newer)}): restore it "
                      f"with platform {data['platform_version']}")
    if check_processes and (up := running_processes(config)):
        raise Refused(f"platform processes are running here: {', '.join(up)}; stop them first (akd stop)")
    _restore_stores(config, root, data["stores"], report)
    mismatches = compare(config, root, data)
    report.begin("migrate")
    try:
        outcome = migration.apply(config)
    except Exception as exc:
        raise StoreFailed("migrate", exc) from exc
    report.end("migrate")
    if on_migrated is not None:
        on_migrated(outcome)
    return mismatches


def _check(what: str, expected: dict, actual: dict | None) -> list[str]:
    if actual is None:
        return [f"{what}: missing"]
    if (expected["count"], expected["checksum"]) != (actual["count"], actual["checksum"]):
        return [f"{what}: {actual['count']} records / {actual['checksum'][:12]}, "
                f"the manifest says {expected['count']} / {expected['checksum'][:12]}"]
    return []


def _compare_database(config: MainConfig, root: Path, role: str, section: dict[str, Any], name: str) -> list[str]:
    mismatches: list[str] = []
    client = documents.connect(config, role)
    try:
        live_name = live_db_name(config, role, section, name)
        live = mongo.digest_database(client, live_name)
        indexes = mongo.index_names(client, live_name)
    finally:
        client.close()
    for coll, expected in section["databases"][name].items():
        mismatches += _check(f"mongodb {live_name}.{coll}", expected, live.get(coll))
        wanted = mongo.dumped_index_names(root / "mongodb" / role / name, coll)
        if sorted(indexes.get(coll, [])) != wanted:
            mismatches.append(f"mongodb {live_name}.{coll} indexes: {indexes.get(coll, [])}, "
                              f"the backup has {wanted}")
    return mismatches


def _compare_clickhouse(config: MainConfig, section: dict[str, Any]) -> list[str]:
    live = clickhouse.digest_tables(config.CLICKHOUSE_SYSTEM)
    return [m for table, entry in section["tables"].items() if entry.get("data")
            for m in _check(f"clickhouse {table}", entry, live.get(table))]


def _compare_kv(config: MainConfig, section: dict[str, Any]) -> list[str]:
    by_name = {e.name: e for e in kv.endpoints(config)}
    mismatches: list[str] = []
    for name, ks in section["keyspaces"].items():
        endpoint = by_name.get(name) or next(
            (e for e in by_name.values() if set(ks["roles"]) & set(e.roles)), None)
        mismatches += _check(f"kv {ks['target']}", ks, kv.digest_endpoint(endpoint) if endpoint else None)
    return mismatches


def _compare_rabbitmq(config: MainConfig, root: Path, expected: dict[str, Any]) -> list[str]:
    with Broker(config, app="aktool-restore") as broker:
        live = rabbitmq.present(broker, root / "rabbitmq" / "definitions.json")
    return [f"rabbitmq {key}: {live[key]} present, the backup declares {expected[key]}"
            for key in ("exchanges", "queues") if live[key] != expected[key]]


def _compare_postgresql(config: MainConfig, section: dict[str, Any]) -> list[str]:
    live = postgresql.digest_tables(config.POSTGRESQL)
    return [m for table, expected in section["tables"].items()
            for m in _check(f"postgresql {table}", expected, live.get(table))]


def compare(config: MainConfig, root: Path, data: dict[str, Any]) -> list[str]:
    """Counts and checksums of the live stores against the manifest; one line per mismatch.
    Every database and store is read back on a thread of its own (see in_parallel)."""
    stores = data["stores"]
    jobs: list[tuple[str, Callable[[], list[str]]]] = []
    for role, section in stores.get("mongodb", {}).items():
        for name in section["databases"]:
            jobs.append((f"mongodb {name}", lambda r=role, s=section, n=name: _compare_database(config, root, r, s, n)))
    if "clickhouse" in stores:
        jobs.append(("clickhouse", lambda: _compare_clickhouse(config, stores["clickhouse"])))
    if "kv" in stores:
        jobs.append(("kv", lambda: _compare_kv(config, stores["kv"])))
    if "rabbitmq" in stores:
        jobs.append(("rabbitmq", lambda: _compare_rabbitmq(config, root, stores["rabbitmq"])))
    if "postgresql" in stores:
        jobs.append(("postgresql", lambda: _compare_postgresql(config, stores["postgresql"])))
    if "spool" in stores:
        jobs.append(("spool", lambda: _check(f"spool {spool_dir(config)}", stores["spool"],
                                             files.digest_dir(spool_dir(config)))))
    return [m for found in in_parallel(jobs) for m in found]


# -- verify --restore-test ------------------------------------------------------------------
RESTORE_TEST_STORES = ("mongodb", "clickhouse", "spool")


def scratch_config(config: MainConfig, tag: str, basedir: Path) -> MainConfig:
    """The configuration with names no platform uses: databases `<name>_restoretest_<tag>`,
    account databases under a prefix of their own, BASEDIR (and so the spool) in `basedir`."""
    clickhouse_settings = config.CLICKHOUSE_SYSTEM.model_copy(
        update={"DATABASE_NAME": f"{config.CLICKHOUSE_SYSTEM.DATABASE_NAME}_restoretest_{tag}"})
    mta = config.MTA.model_copy(update={"SPOOL_DIR": str(basedir / "spool" / "akmta")})
    return config.model_copy(update={
        "CONTROLDB_NAME": f"{config.CONTROLDB_NAME}_restoretest_{tag}",
        "ACCOUNTDB_PREFIX": f"restoretest{tag}_{config.ACCOUNTDB_PREFIX}",
        "CLICKHOUSE_SYSTEM": clickhouse_settings, "MTA": mta, "BASEDIR": str(basedir)})


def _drop_scratch(scratch: MainConfig, basedir: Path) -> None:
    for role in ("control", "account"):
        client = documents.connect(scratch, role)
        try:
            names = [scratch.CONTROLDB_NAME] if role == "control" else account_databases(client, scratch)
            for name in names:
                client.drop_database(name)
        finally:
            client.close()
    store = Analytics(scratch.CLICKHOUSE_SYSTEM)
    try:
        store.execute(f"DROP DATABASE IF EXISTS `{store.database}`")
    finally:
        store.close()
    shutil.rmtree(basedir, ignore_errors=True)


def restore_test(config: MainConfig, root: Path, report: Reporter | None = None,
                 key: bytes | None = None) -> list[str]:
    """Restores the backup's MongoDB, ClickHouse and spool parts into scratch names on the
    configured servers, compares every count and checksum with the manifest, and drops the
    scratch copies again. The key-value, RabbitMQ and PostgreSQL parts are only read
    through (by verify): they have no names of their own to restore beside the live data."""
    report = report or Reporter()
    data, problems = verify(root, key)
    if problems:
        raise Refused("the backup is damaged: " + "; ".join(str(p) for p in problems))
    assert data is not None
    subset = {**data, "stores": {k: v for k, v in data["stores"].items() if k in RESTORE_TEST_STORES}}
    basedir = Path(tempfile.mkdtemp(prefix="akbackup-restore-test-"))
    scratch = scratch_config(config, secrets.token_hex(4), basedir)
    try:
        _restore_stores(scratch, root, subset["stores"], report)
        return compare(scratch, root, subset)
    finally:
        _drop_scratch(scratch, basedir)
