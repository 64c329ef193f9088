"""Key-value: Kvrocks, SSDB and Redis all speak the Redis protocol (redis-py).

Kvrocks holds campaign de-duplication and the workflow cache; SSDB holds stop lists, hard
bounces, notifications and hourly statistics. SSDB implements a subset of Redis commands:
code that may run against SSDB sticks to strings, hashes, sorted sets and lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster  # noqa: F401  (aioredis.cluster.ClusterNode)
import redis.cluster  # noqa: F401  (redis.cluster.ClusterNode)
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

    def ping(self) -> None:
        # SSDB answers dbsize; Kvrocks and Redis answer both, ping is the cheaper one.
        if self.engine == "ssdb":
            self.client.execute_command("dbsize")
        else:
            self.client.ping()

    def close(self) -> None:
        self.client.close()


def _cluster_client(settings: KVCluster, timeout: float, flavour):
    """A client of `flavour` (the redis module or redis.asyncio) for the KVCluster settings."""
    password = settings.PASSWORD or None
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
    target = ",".join(f"{n.HOST}:{n.PORT}" for n in settings.NODES)
    return KVStore(name, settings.ENGINE, _cluster_client(settings, timeout, redis), target)


def async_from_cluster(settings: KVCluster, timeout: float = 5.0) -> aioredis.Redis | aioredis.RedisCluster:
    """The same store for an asyncio loop (commands wait without blocking the loop)."""
    return _cluster_client(settings, timeout, aioredis)


def ssdb(config: MainConfig, role: SsdbRole, timeout: float = 5.0) -> KVStore:
    key = role.upper()
    host = getattr(config, f"SSDB_{key}_IP")
    port = getattr(config, f"SSDB_{key}_PORT")
    password = getattr(config, f"SSDB_{key}_PASS") or None
    client = redis.Redis(host=host, port=port, password=password,
                         socket_timeout=timeout, socket_connect_timeout=timeout)
    return KVStore(f"ssdb_{role}", config.SSDB_ENGINE, client, f"{host}:{port}")
