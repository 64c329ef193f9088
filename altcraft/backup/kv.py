"""The Redis-protocol key spaces (Kvrocks, SSDB's roles, or Redis in their place): a
protocol-level dump of the platform's own keys.

Only keys under the platform's prefix `ak:` are read, written or deleted, so a server
shared with something else keeps the rest. Each key is read by its type (string, hash,
sorted set, list, set) with its remaining TTL, and written as one JSON line with base64
values: a logical format that Redis, Kvrocks and any later version take back with plain
writes, where DUMP/RESTORE payloads are tied to one engine's RDB version (Kvrocks gained
DUMP late; a payload from a newer Redis is refused by an older one).

Several roles often share one server: key spaces are the distinct endpoints, each listing
its roles, so nothing is dumped or restored twice.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from altcraft.backup.digest import SumDigest
from altcraft.config import MainConfig
from altcraft.stores import kv

PREFIX = "ak:"
PATTERN = PREFIX + "*"
BATCH = 500
Tick = Callable[[str, int], None]


class Unsupported(Exception):
    """A key space this version cannot back up by protocol (named in the message)."""


@dataclass
class Endpoint:
    host: str
    port: int
    password: str = field(default="", repr=False)
    db: int = 0
    roles: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.host}_{self.port}_{self.db}"

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}/{self.db}"

    def client(self, timeout: float = 30.0) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password or None, db=self.db,
                           socket_timeout=timeout, socket_connect_timeout=min(timeout, 5.0))


def endpoints(config: MainConfig) -> list[Endpoint]:
    """The distinct endpoints of every key-value role, each with the roles it serves."""
    found: dict[tuple, Endpoint] = {}

    def add(role: str, host: str, port: int, password: str, db: int) -> None:
        key = (host, port, db)
        endpoint = found.setdefault(key, Endpoint(host, port, password, db))
        endpoint.roles.append(role)

    for role, cluster in (("camp_duplicatesdb", config.CAMP_DUPLICATESDB),
                          ("procworkflow_cache", config.PROCWORKFLOW_DISTRIBUTED_CACHE_DB)):
        if cluster.MODE == "cluster":
            raise Unsupported(f"{role}: cluster mode is not backed up yet (use the engine's own "
                              "snapshot on each node)")
        # MODE sentinel: the primary the sentinels name now (a replica may lag behind it)
        host, port = kv.primary_address(cluster)
        add(role, host, port, cluster.PASSWORD, cluster.DB)
    for role in ("actions", "hbsupp", "notify", "stats"):
        if config.SSDB_ENGINE == "ssdb":
            raise Unsupported(f"ssdb_{role}: the SSDB engine has no SCAN/TYPE; back it up with "
                              "ssdb-dump on its host (not automated yet), or run the redis engine")
        settings = config.ssdb_settings(role)
        host, port = kv.primary_address(settings)  # SSDB_SENTINEL: the primary now
        add(f"ssdb_{role}", host, port, settings.PASSWORD, 0)
    return list(found.values())


def _b(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _read(client: redis.Redis, key: bytes, kind: str) -> dict[str, Any] | None:
    if kind == "hash":
        value: Any = sorted([_b(f), _b(v)] for f, v in client.hscan_iter(key, count=1000))
    elif kind == "zset":
        value = sorted([_b(m), s] for m, s in client.zscan_iter(key, count=1000))
    elif kind == "set":
        value = sorted(_b(m) for m in client.sscan_iter(key, count=1000))
    elif kind == "list":
        value = [_b(v) for v in client.lrange(key, 0, -1)]
    elif kind == "none":
        return None  # expired or deleted between SCAN and TYPE
    else:
        raise Unsupported(f"key {key!r}: type {kind} is not backed up")
    return {"k": _b(key), "t": kind, "v": value}


def _records(client: redis.Redis, ttl: bool = True) -> Iterator[dict[str, Any]]:
    """Every platform key as a record (with its TTL when `ttl`). The keys of one SCAN page
    are read with two pipelined round trips (TYPE, then GET and PTTL: strings are nearly
    all of them), not three per key; only hashes, sets, sorted sets and lists are read one
    by one."""
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=PATTERN, count=1000)
        if keys:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.type(key)
            kinds = [k.decode() for k in pipe.execute()]
            pipe = client.pipeline(transaction=False)
            for key, kind in zip(keys, kinds):
                if kind == "string":
                    pipe.get(key)
                if ttl:
                    pipe.pttl(key)
            answers = iter(pipe.execute())
            for key, kind in zip(keys, kinds):
                if kind == "string":
                    value = next(answers)
                    record = None if value is None else {"k": _b(key), "t": kind, "v": _b(value)}
                else:
                    record = _read(client, key, kind)
                pttl = next(answers) if ttl else None
                if record is None:
                    continue
                if ttl:
                    record["ttl"] = pttl if pttl > 0 else -1
                yield record
        if cursor == 0:
            return


def _canonical(record: dict[str, Any]) -> bytes:
    """What the checksum covers: key, type and value, not the TTL (it runs down)."""
    return json.dumps({"k": record["k"], "t": record["t"], "v": record["v"]}, sort_keys=True,
                      separators=(",", ":")).encode()


def _family(key: bytes) -> str:
    parts = key.decode("utf-8", "replace").split(":")
    return ":".join(parts[:2])


def dump(endpoint: Endpoint, path: Path, tick: Tick) -> dict[str, Any]:
    client = endpoint.client()
    digest = SumDigest()
    families: dict[str, int] = {}
    try:
        with gzip.open(path, "wt", encoding="ascii") as f:
            for record in _records(client):
                f.write(json.dumps(record, separators=(",", ":")) + "\n")
                digest.add(_canonical(record))
                family = _family(base64.b64decode(record["k"]))
                families[family] = families.get(family, 0) + 1
                if digest.count % BATCH == 0:
                    tick(f"kv {endpoint.target}", BATCH)
        tick(f"kv {endpoint.target}", digest.count % BATCH)
    finally:
        client.close()
    return {"target": endpoint.target, "roles": endpoint.roles, "pattern": PATTERN,
            "families": dict(sorted(families.items())), **digest.as_dict()}


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="ascii") as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                base64.b64decode(record["k"], validate=True)
                record["t"], record["v"], record["ttl"]  # noqa: B018 - presence check
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"line {number}: {exc}") from None
            yield record


def check_readable(path: Path, expected: dict[str, Any]) -> str | None:
    digest = SumDigest()
    try:
        for record in iter_records(path):
            digest.add(_canonical(record))
    except Exception as exc:  # noqa: BLE001 - gzip, JSON or base64 failure: damaged
        return f"not readable: {exc}"
    if digest.count != expected["count"] or digest.hexdigest() != expected["checksum"]:
        return f"holds {digest.count} keys, the manifest says {expected['count']} (or the checksum differs)"
    return None


def wipe(client: redis.Redis) -> int:
    """Deletes the platform's keys (only those) from one endpoint."""
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=PATTERN, count=1000):
        batch.append(key)
        if len(batch) >= BATCH:
            removed += client.delete(*batch)
            batch = []
    if batch:
        removed += client.delete(*batch)
    return removed


def restore(endpoint: Endpoint, path: Path, tick: Tick) -> None:
    client = endpoint.client()
    try:
        wipe(client)
        pipe = client.pipeline(transaction=False)
        pending = 0
        for record in iter_records(path):
            key = base64.b64decode(record["k"])
            kind, value = record["t"], record["v"]
            if kind == "string":
                pipe.set(key, base64.b64decode(value))
            elif kind == "hash":
                for start in range(0, len(value), 1000):
                    pipe.hset(key, mapping={base64.b64decode(f): base64.b64decode(v)
                                            for f, v in value[start:start + 1000]})
            elif kind == "zset":
                for start in range(0, len(value), 1000):
                    pipe.zadd(key, {base64.b64decode(m): s for m, s in value[start:start + 1000]})
            elif kind == "set":
                for start in range(0, len(value), 1000):
                    pipe.sadd(key, *[base64.b64decode(m) for m in value[start:start + 1000]])
            elif kind == "list":
                for start in range(0, len(value), 1000):
                    pipe.rpush(key, *[base64.b64decode(v) for v in value[start:start + 1000]])
            if record["ttl"] > 0:
                pipe.pexpire(key, record["ttl"])
            pending += 1
            if pending >= BATCH:
                pipe.execute()
                tick(f"kv {endpoint.target}", pending)
                pending = 0
        pipe.execute()
        tick(f"kv {endpoint.target}", pending)
    finally:
        client.close()


def digest_endpoint(endpoint: Endpoint) -> dict[str, Any]:
    client = endpoint.client()
    digest = SumDigest()
    try:
        for record in _records(client, ttl=False):
            digest.add(_canonical(record))
    finally:
        client.close()
    return digest.as_dict()
