"""Key-value: Kvrocks, SSDB and Redis all speak the Redis protocol (redis-py).

Kvrocks holds campaign de-duplication and the workflow cache; SSDB holds stop lists, hard
bounces, notifications and hourly statistics. SSDB implements a subset of Redis commands:
code that may run against SSDB sticks to strings, hashes, sorted sets and lists.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster  # noqa: F401  (aioredis.cluster.ClusterNode)
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster  # noqa: F401  (redis.cluster.ClusterNode)
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster

from altcraft.config import KVCluster, MainConfig

SsdbRole = Literal["actions", "hbsupp", "notify", "stats"]
SSDB_ROLES: tuple[SsdbRole, ...] = ("actions", "hbsupp", "notify", "stats")


@dataclass
class KVStore:
    name: str
    engine: str
    client: redis.Redis | RedisCluster
    target: str
    # MODE sentinel: the manager that asks the sentinels where the primary is (closed with
    # the store).
    sentinel: redis.sentinel.Sentinel | None = field(default=None, repr=False)

    def ping(self) -> None:
        # SSDB answers dbsize; Kvrocks and Redis answer both, ping is the cheaper one.
        if self.engine == "ssdb":
            self.client.execute_command("dbsize")
        else:
            self.client.ping()

    def primary(self) -> str:
        """host:port of the node the writes go to: in MODE sentinel, the one the sentinels
        name now; else the configured target."""
        if self.sentinel is None:
            return self.target
        host, port = self.sentinel.discover_master(self.client.connection_pool.service_name)
        return f"{host}:{port}"

    def close(self) -> None:
        self.client.close()
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                client.close()


# -- MODE sentinel ---------------------------------------------------------------------------
# After the primary dies, the sentinels need down-after-milliseconds to agree it is down and
# then a moment to promote a replica; until then a command fails with ConnectionError (the
# old address refuses or times out) or MasterNotFoundError (a ConnectionError too). redis-py
# retries such a command on the same client, asking the sentinels for the primary again at
# each reconnection, so the caller sees one slow command instead of an error. A count of
# retries would multiply: redis-py retries the connect inside each retried command with
# the same policy. So the policy is a deadline (FAILOVER_WAIT_SECONDS from the command's
# first failure) with a short capped exponential backoff (0.05 s doubling to 0.5 s: the
# new primary is used within half a second of its promotion, and a dead cluster is not
# hammered). The commands retried are the platform's idempotent writes (SET with EX,
# pipelines of them) and reads; a retried INCR (the sign-in throttle) may count twice.
_BACKOFF_BASE, _BACKOFF_CAP = 0.05, 0.5


class _FailoverRetry(redis.retry.Retry):
    """Retries ConnectionError/TimeoutError until `seconds` have passed since the first."""

    def __init__(self, seconds: float):
        super().__init__(ExponentialBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE), retries=1_000_000)
        self.seconds = seconds

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        deadline, failures = None, 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                deadline = deadline or time.monotonic() + self.seconds
                if time.monotonic() >= deadline:
                    raise
                time.sleep(self._backoff.compute(failures))


class _AsyncFailoverRetry(redis.asyncio.retry.Retry):
    """_FailoverRetry for redis.asyncio (waits without blocking the loop)."""

    def __init__(self, seconds: float):
        super().__init__(ExponentialBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE), retries=1_000_000)
        self.seconds = seconds

    async def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        deadline, failures = None, 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    await fail(error, failures)
                else:
                    await fail(error)
                deadline = deadline or time.monotonic() + self.seconds
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(self._backoff.compute(failures))


# A connection that breaks in the middle of a command is reconnected by send_packed_command
# through connect_check_health, which (redis-py 8.1) goes back to the address the connection
# had - the dead primary - instead of asking the sentinels: a command in flight when the
# primary died failed after the whole wait (seen in test_kv_sentinel). These connections
# take that reconnection through connect(), which asks the sentinels at each attempt.
class _FollowingConnection(redis.sentinel.SentinelManagedConnection):
    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True):
        if retry_socket_connect and not self._sock:
            return self.connect()
        return super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


class _AsyncFollowingConnection(redis.asyncio.sentinel.SentinelManagedConnection):
    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True):
        if retry_socket_connect and not self.is_connected:
            return await self.connect()
        return await super().connect_check_health(check_health=check_health,
                                                  retry_socket_connect=retry_socket_connect)


def sentinel_target(settings: KVCluster) -> str:
    """What checks and logs name for a MODE sentinel store (no password)."""
    return f"sentinel {settings.SENTINEL_MASTER}@" + ",".join(f"{n.HOST}:{n.PORT}" for n in settings.SENTINELS)


def _sentinel_client(settings: KVCluster, timeout: float, flavour) -> tuple[Any, Any]:
    """(primary client, sentinel manager) of `flavour` (redis.sentinel or redis.asyncio.sentinel)."""
    asynchronous = flavour is redis.asyncio.sentinel
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if settings.SENTINEL_PASSWORD:
        sentinel_kwargs["password"] = settings.SENTINEL_PASSWORD
    manager = flavour.Sentinel([(n.HOST, n.PORT) for n in settings.SENTINELS], sentinel_kwargs=sentinel_kwargs)
    retry = (_AsyncFailoverRetry if asynchronous else _FailoverRetry)(settings.FAILOVER_WAIT_SECONDS)
    client = manager.master_for(
        settings.SENTINEL_MASTER, redis_class=aioredis.Redis if asynchronous else redis.Redis,
        password=settings.PASSWORD or None, db=settings.DB, socket_timeout=timeout,
        socket_connect_timeout=timeout, retry=retry,
        connection_class=_AsyncFollowingConnection if asynchronous else _FollowingConnection)
    return client, manager


def primary_address(settings: KVCluster, timeout: float = 5.0) -> tuple[str, int]:
    """(host, port) of the store's primary now: the first node, or in MODE sentinel the one
    the sentinels name (for tools that must talk to one server, e.g. the backup)."""
    if settings.MODE != "sentinel":
        return settings.NODES[0].HOST, settings.NODES[0].PORT
    client, manager = _sentinel_client(settings, timeout, redis.sentinel)
    try:
        host, port = manager.discover_master(settings.SENTINEL_MASTER)
        return str(host), int(port)
    finally:
        client.close()
        for sentinel in manager.sentinels:
            sentinel.close()


def _cluster_client(settings: KVCluster, timeout: float, flavour):
    """A client of `flavour` (the redis module or redis.asyncio) for the KVCluster settings."""
    password = settings.PASSWORD or None
    if settings.MODE == "sentinel":
        return _sentinel_client(settings, timeout, flavour.sentinel)[0]
    if settings.MODE == "cluster":
        return flavour.RedisCluster(
            startup_nodes=[flavour.cluster.ClusterNode(n.HOST, n.PORT) for n in settings.NODES],
            password=password, socket_timeout=timeout, socket_connect_timeout=timeout,
        )
    node = settings.NODES[0]
    return flavour.Redis(host=node.HOST, port=node.PORT, password=password, db=settings.DB,
                         socket_timeout=timeout, socket_connect_timeout=timeout)


def from_cluster(name: str, settings: KVCluster, timeout: float = 5.0) -> KVStore:
    """A Kvrocks/Redis store described the CAMP_DUPLICATESDB way (MODE, PASSWORD, NODES)."""
    if settings.MODE == "sentinel":
        client, manager = _sentinel_client(settings, timeout, redis.sentinel)
        return KVStore(name, settings.ENGINE, client, sentinel_target(settings), manager)
    target = ",".join(f"{n.HOST}:{n.PORT}" for n in settings.NODES)
    return KVStore(name, settings.ENGINE, _cluster_client(settings, timeout, redis), target)


def async_from_cluster(settings: KVCluster, timeout: float = 5.0) -> aioredis.Redis | aioredis.RedisCluster:
    """The same store for an asyncio loop (commands wait without blocking the loop; in MODE
    sentinel they follow a failover as from_cluster's do)."""
    return _cluster_client(settings, timeout, aioredis)


def ssdb(config: MainConfig, role: SsdbRole, timeout: float = 5.0) -> KVStore:
    """SSDB role `role` (or the Redis in its place; under Sentinel when SSDB_SENTINEL names it)."""
    store = from_cluster(f"ssdb_{role}", config.ssdb_settings(role), timeout=timeout)
    store.engine = config.SSDB_ENGINE
    return store
