"""A Redis primary, a replica and three Sentinels on loopback ports, for failover tests.

Real redis-server processes (Debian's 7.0 here; `redis-server <conf> --sentinel` is what the
redis-sentinel command runs), each in its own temporary directory, removed on `stop()`.
The sentinels are tuned to decide quickly (down-after-milliseconds 1000, failover-timeout
3000) so that a failover completes in a few seconds; production keeps the role's defaults.
Every server has a password, as the roles render them.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.lib.ports import free_port, port_open
from tests.lib.wait import stop_processes, wait_for, wait_started

MASTER_NAME = "altcraft-kv"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class Server:
    name: str
    port: int
    conf: Path
    sentinel: bool = False
    process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class SentinelSet:
    password: str
    sentinel_password: str
    root: Path
    servers: dict[str, Server] = field(default_factory=dict)
    down_after_ms: int = 1000
    quorum: int = 2

    # -- who is who -------------------------------------------------------------------------
    @property
    def data_nodes(self) -> list[Server]:
        return [s for s in self.servers.values() if not s.sentinel]

    @property
    def sentinels(self) -> list[Server]:
        return [s for s in self.servers.values() if s.sentinel]

    def settings(self, **extra) -> dict:
        """The KVCluster section (CAMP_DUPLICATESDB) of main.json for this set."""
        return {"MODE": "sentinel", "ENGINE": "redis", "PASSWORD": self.password,
                "NODES": [{"HOST": "127.0.0.1", "PORT": s.port} for s in self.data_nodes],
                "SENTINELS": [{"HOST": "127.0.0.1", "PORT": s.port} for s in self.sentinels],
                "SENTINEL_MASTER": MASTER_NAME, "SENTINEL_PASSWORD": self.sentinel_password,
                **extra}

    def client(self, name: str) -> redis.Redis:
        """A plain client of one server (no sentinel in between)."""
        server = self.servers[name]
        password = self.sentinel_password if server.sentinel else self.password
        return redis.Redis(host="127.0.0.1", port=server.port, password=password,
                           socket_timeout=2, socket_connect_timeout=2)

    def role(self, name: str) -> str:
        with self.client(name) as c:
            return c.execute_command("ROLE")[0].decode()

    def master_seen_by_sentinels(self) -> set[int | None]:
        """The primary's port as each running sentinel names it."""
        seen: set[int | None] = set()
        for s in self.sentinels:
            if not s.running:
                continue
            with self.client(s.name) as c:
                answer = c.execute_command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
                seen.add(int(answer[1]) if answer else None)
        return seen

    def primary(self) -> str | None:
        """The data node all the sentinels name as primary (None while they disagree)."""
        seen = self.master_seen_by_sentinels()
        if len(seen) != 1:
            return None
        port = seen.pop()
        return next((s.name for s in self.data_nodes if s.port == port), None)

    # -- processes --------------------------------------------------------------------------
    def start(self, name: str) -> None:
        server = self.servers[name]
        args = [REDIS_SERVER, str(server.conf)] + (["--sentinel"] if server.sentinel else [])
        log = open(server.conf.parent / "server.log", "ab")
        server.process = subprocess.Popen(args, cwd=server.conf.parent, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        log.close()
        wait_started(server.process, lambda: port_open("127.0.0.1", server.port, timeout=0.2),
                     f"{name} on port {server.port}", server.conf.parent / "server.log", timeout=15, every=0.05)

    def freeze(self, name: str) -> None:
        """SIGSTOP: the server takes no more bytes off its sockets (commands stay in flight)."""
        self.servers[name].process.send_signal(signal.SIGSTOP)

    def pending_requests(self, name: str) -> int:
        """Connections to the server with bytes it has not read (commands in flight)."""
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{self.servers[name].port} )"],
                             capture_output=True, text=True, check=True).stdout
        return sum(1 for line in out.splitlines() if line.split() and int(line.split()[0]) > 0)

    def kill(self, name: str) -> None:
        """kill -9: no shutdown, no goodbye to the replicas or the sentinels."""
        server = self.servers[name]
        if server.running:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)

    def stop(self) -> None:
        stop_processes(*(server.process for server in self.servers.values()), timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self, name: str) -> str:
        return (self.servers[name].conf.parent / "server.log").read_text(errors="replace")


def _data_conf(port: int, password: str, replica_of: int | None) -> str:
    lines = [f"port {port}", "bind 127.0.0.1", "daemonize no", 'save ""', "appendonly yes",
             f"requirepass {password}", f"masterauth {password}", "dir ."]
    if replica_of is not None:
        lines.append(f"replicaof 127.0.0.1 {replica_of}")
    return "\n".join(lines) + "\n"


def _sentinel_conf(port: int, master_port: int, set_: SentinelSet) -> str:
    return "\n".join([
        f"port {port}", "bind 127.0.0.1", "daemonize no", "dir .",
        f"requirepass {set_.sentinel_password}",
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {set_.quorum}",
        f"sentinel auth-pass {MASTER_NAME} {set_.password}",
        # the other sentinels ask with this one's password (all share it)
        f"sentinel sentinel-pass {set_.sentinel_password}",
        f"sentinel down-after-milliseconds {MASTER_NAME} {set_.down_after_ms}",
        f"sentinel failover-timeout {MASTER_NAME} 3000",
        f"sentinel parallel-syncs {MASTER_NAME} 1",
    ]) + "\n"


def start_sentinel_set(password: str = "kv-secret-for-tests-0123456789",
                       sentinel_password: str = "sentinel-secret-for-tests-012345") -> SentinelSet:
    """kv1 (primary), kv2 (its replica) and sentinels s1..s3, running and agreed on kv1."""
    root = Path(tempfile.mkdtemp(prefix="altcraft-sentinel-"))
    set_ = SentinelSet(password, sentinel_password, root)
    primary_port, replica_port = free_port(), free_port()
    for name, port, conf in (("kv1", primary_port, _data_conf(primary_port, password, None)),
                             ("kv2", replica_port, _data_conf(replica_port, password, primary_port))):
        (root / name).mkdir()
        (root / name / "redis.conf").write_text(conf)
        set_.servers[name] = Server(name, port, root / name / "redis.conf")
    for name in ("s1", "s2", "s3"):
        port = free_port()
        (root / name).mkdir()
        # a sentinel rewrites its own file (epochs, known replicas and sentinels)
        (root / name / "sentinel.conf").write_text(_sentinel_conf(port, primary_port, set_))
        set_.servers[name] = Server(name, port, root / name / "sentinel.conf", sentinel=True)
    try:
        for name in set_.servers:
            set_.start(name)
        wait_for(lambda: _replica_in_sync(set_), timeout=15, what="kv2 replicating kv1")
        # every sentinel knows the replica and the two other sentinels: only then can they
        # elect a leader and promote kv2
        wait_for(lambda: all(_sentinel_ready(set_, s.name) for s in set_.sentinels), timeout=20,
                 what="each sentinel seeing the replica and two other sentinels")
    except BaseException:
        set_.stop()
        raise
    return set_


def _replica_in_sync(set_: SentinelSet) -> bool:
    with set_.client("kv2") as c:
        info = c.info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def _sentinel_ready(set_: SentinelSet, name: str) -> bool:
    with set_.client(name) as c:
        state = c.sentinel_master(MASTER_NAME)
    return int(state["num-slaves"]) >= 1 and int(state["num-other-sentinels"]) >= 2
