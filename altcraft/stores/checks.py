"""Reachability checks for every configured store and the broker.

Shared by `aktool check`, the readiness endpoints and the health-check playbook. Each check
really talks to its server (a query, a ping, an AMQP handshake), with a short timeout, and
they run concurrently so that one dead store does not hold up the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from altcraft.config import MainConfig
from altcraft.stores import analytics, broker, documents, kv


@dataclass(frozen=True)
class CheckResult:
    name: str
    target: str
    ok: bool
    detail: str
    elapsed_ms: int

    def as_dict(self) -> dict:
        return asdict(self)


Probe = Callable[[MainConfig, float], str]  # returns a detail line, raises on failure


def _mongo(role: documents.Role) -> Probe:
    def probe(config: MainConfig, timeout: float) -> str:
        client = documents.connect(config, role, timeout=timeout, app="altcraft-check")
        try:
            client.admin.command("ping")
            return f"version {documents.server_version(client)}"
        finally:
            client.close()
    return probe


def _clickhouse(config: MainConfig, timeout: float) -> str:
    store = analytics.Analytics(config.CLICKHOUSE_SYSTEM, timeout=timeout)
    try:
        version = ".".join(map(str, store.server_version()))
        return f"version {version}"
    finally:
        store.close()


def _rabbitmq(config: MainConfig, timeout: float) -> str:
    with broker.Broker(config, timeout=timeout, app="altcraft-check") as b:
        return f"version {b.server_version()}, vhost {config.RABBITMQ_VHOST}"


def _kv_cluster(key: str) -> Probe:
    def probe(config: MainConfig, timeout: float) -> str:
        store = kv.from_cluster(key.lower(), getattr(config, key), timeout=timeout)
        try:
            store.ping()
            settings = getattr(config, key)
            if settings.MODE == "sentinel":  # which node the sentinels make the primary now
                return f"{store.engine}, sentinel, primary {store.primary()}"
            return f"{store.engine}, {settings.MODE}"
        finally:
            store.close()
    return probe


def _ssdb(role: kv.SsdbRole) -> Probe:
    def probe(config: MainConfig, timeout: float) -> str:
        store = kv.ssdb(config, role, timeout=timeout)
        try:
            store.ping()
            if store.sentinel is not None:  # which node the sentinels make the primary now
                return f"{store.engine}, sentinel, primary {store.primary()}"
            return store.engine
        finally:
            store.close()
    return probe


def _postgresql(config: MainConfig, timeout: float) -> str:
    from altcraft.stores import relational  # psycopg is loaded only where PostgreSQL is used

    with relational.connect(config.POSTGRESQL, timeout=timeout) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        return f"version {version}"


def _mongo_target(config: MainConfig, role: documents.Role) -> str:
    uri = documents.mongo_uri(config, role)
    # never show credentials: keep only what follows the '@'
    return uri.split("@", 1)[-1].removeprefix("mongodb://").split("/", 1)[0]


def _kv_target(config: MainConfig, key: str) -> str:
    settings = getattr(config, key)
    if settings.MODE == "sentinel":
        return kv.sentinel_target(settings)
    return ",".join(f"{n.HOST}:{n.PORT}" for n in settings.NODES)


def configured(config: MainConfig) -> dict[str, tuple[str, Probe]]:
    """name -> (target, probe) for every store this configuration uses."""
    checks: dict[str, tuple[str, Probe]] = {
        "controldb": (_mongo_target(config, "control"), _mongo("control")),
        "accountdb": (_mongo_target(config, "account"), _mongo("account")),
    }
    if config.FILEDB_ENABLE:
        checks["filedb"] = (_mongo_target(config, "file"), _mongo("file"))
    ch = config.CLICKHOUSE_SYSTEM
    checks["clickhouse"] = (f"{ch.HOST}:{ch.PORT}", _clickhouse)
    checks["rabbitmq"] = (f"{config.RABBITMQ_HOST}:{config.RABBITMQ_PORT}", _rabbitmq)
    for key in ("CAMP_DUPLICATESDB", "PROCWORKFLOW_DISTRIBUTED_CACHE_DB"):
        name = "camp_duplicatesdb" if key == "CAMP_DUPLICATESDB" else "procworkflow_cache"
        checks[name] = (_kv_target(config, key), _kv_cluster(key))
    for role in kv.SSDB_ROLES:
        settings = config.ssdb_settings(role)
        node = settings.NODES[0]
        target = kv.sentinel_target(settings) if settings.MODE == "sentinel" else f"{node.HOST}:{node.PORT}"
        checks[f"ssdb_{role}"] = (target, _ssdb(role))
    if config.POSTGRESQL.ENABLE:
        pg = config.POSTGRESQL
        checks["postgresql"] = (f"{pg.HOST}:{pg.PORT}", _postgresql)
    return checks


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run_one(name: str, target: str, probe: Probe, config: MainConfig, timeout: float) -> CheckResult:
    started = time.monotonic()
    try:
        detail, ok = probe(config, timeout), True
    except Exception as exc:  # every failure is a FAIL line, never a crash of the checker
        detail, ok = _reason(exc), False
    return CheckResult(name, target, ok, detail, int((time.monotonic() - started) * 1000))


def run(config: MainConfig, only: Iterable[str] | None = None, timeout: float = 3.0) -> list[CheckResult]:
    checks = configured(config)
    names = [n for n in checks if only is None or n in set(only)]
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        futures = [pool.submit(_run_one, n, *checks[n], config, timeout) for n in names]
        return [f.result() for f in futures]
