"""Two ClickHouse replicas coordinated by ZooKeeper, on loopback ports, for tests and bench.

One standalone ZooKeeper (Debian's `zookeeper` package, installed with apt-get when missing,
see tests/lib/packages.py): a single ZooKeeper is enough to prove replication and
de-duplication, which only need the coordination service to be up; production runs three
(the zookeeper role) or ClickHouse Keeper with the same client section. Two
clickhouse-server processes (the installed 18.16) with their own directories and ports; their
cluster drop-in (macros {shard}/{replica}, remote_servers with internal_replication, the
ZooKeeper client section, the distributed_ddl queue that `ON CLUSTER` DDL uses) is rendered
from the clickhouse role's template, so the role's output is what runs here. Everything lives under one
temporary directory, removed by `stop()`; each process is ours (started here, killed by its
pid, never by name).
"""

from __future__ import annotations

import shutil
import signal
import socket
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from tests.lib import packages
from tests.lib.ports import free_port, port_open
from tests.lib.wait import stop_processes, wait_started

ROLE_TEMPLATES = Path(__file__).resolve().parents[2] / "roles" / "clickhouse" / "templates"
CLUSTER_TEMPLATE = "etc/clickhouse-server/config.d/cluster.xml.j2"
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
USER = "altcraft"
PASSWORD = "replica-test-password"  # loopback-only test instances


@dataclass
class Node:
    name: str  # the {replica} macro
    root: Path
    tcp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    interserver_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.root / "log" / "clickhouse-server.err.log"


class ZooKeeper:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        packages.ensure("zookeeper", ZOOKEEPER_JAR.exists)
        java = packages.command("java", "default-jre-headless")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        cfg = self.root / "zoo.cfg"
        # standalone (no server.N lines): one process, enough for the test (see the module doc)
        cfg.write_text(
            f"tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={self.root / 'data'}\n"
            f"clientPort={self.port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n")
        with open(self.root / "zookeeper.log", "ab") as out:
            self.process = subprocess.Popen(
                [java, "-Xmx128m", "-cp", f"/etc/zookeeper/conf:{ZOOKEEPER_JAR}", ZOOKEEPER_MAIN, str(cfg)],
                cwd=self.root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        wait_started(self.process, self._ok, f"ZooKeeper on 127.0.0.1:{self.port}", self.root / "zookeeper.log",
                     timeout=60)

    def _ok(self) -> bool:
        """A session handshake answered (ruok answers before sessions are taken)."""
        # ConnectRequest: protocol 0, last zxid 0, timeout 6000 ms, session 0, 16-byte password
        body = struct.pack(">iqiqi", 0, 0, 6000, 0, 16) + bytes(16)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(struct.pack(">i", len(body)) + body)
                return len(s.recv(64)) >= 36  # ConnectResponse: a session id was given
        except OSError:
            return False

    def stop(self) -> None:
        stop_processes(self.process)


class ChCluster:
    """`nodes[i].tcp_port` is where replica i answers; `cluster` names it in remote_servers."""

    def __init__(self, replicas: int = 2, cluster: str = "altcraft", base: Path | None = None):
        self.cluster = cluster
        self.root = Path(tempfile.mkdtemp(prefix="ch-cluster-", dir=base))
        self.zookeeper = ZooKeeper(self.root / "zookeeper")
        self.nodes = [Node(f"ch{i + 1}", self.root / f"ch{i + 1}") for i in range(replicas)]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ChCluster":
        try:
            self.zookeeper.start()
            for node in self.nodes:
                self._write_config(node)
                self._launch(node)
            for node in self.nodes:
                self.wait_up(node)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_processes(*(node.process for node in self.nodes))
        self.zookeeper.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def kill(self, node: Node) -> None:
        """kill -9: no shutdown, parts in flight are whatever the disk holds."""
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=30)

    def restart(self, node: Node) -> None:
        self._launch(node)
        self.wait_up(node)

    def __enter__(self) -> "ChCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    def settings(self, node: Node, database: str, **extra):
        """A CLICKHOUSE_SYSTEM section for `node` (the platform's config class)."""
        from altcraft.config import ClickHouseSystem

        return ClickHouseSystem(HOST="127.0.0.1", PORT=node.tcp_port, USER=USER, PASSWORD=PASSWORD,
                                DATABASE_NAME=database, **extra)

    def query(self, node: Node, sql: str) -> list[tuple]:
        from clickhouse_driver import Client

        client = Client(host="127.0.0.1", port=node.tcp_port, user=USER, password=PASSWORD,
                        connect_timeout=5, send_receive_timeout=60)
        try:
            return client.execute(sql)
        finally:
            client.disconnect()

    def wait_up(self, node: Node, timeout: float = 60) -> None:
        def up() -> bool:
            if not port_open("127.0.0.1", node.tcp_port):
                return False
            try:
                # through to ZooKeeper: 18.16's first session attempts right after start can
                # fail (the handshake is cut), and a replicated table or ON CLUSTER query
                # meeting that state fails - or, on 18.16, crashes the server
                return self.query(node, "SELECT count() FROM system.zookeeper WHERE path = '/'")[0][0] > 0
            except Exception:  # noqa: BLE001 - starting: users not loaded, no ZooKeeper session yet
                return False

        wait_started(node.process, up, f"clickhouse-server {node.name} on port {node.tcp_port}", node.log,
                     timeout=timeout)

    # ------------------------------------------------------------------ config
    def _launch(self, node: Node) -> None:
        binary = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
        with open(node.root / "log" / "stdout.log", "ab") as out:
            node.process = subprocess.Popen(
                [binary, f"--config-file={node.root / 'config.xml'}"], cwd=node.root,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def _cluster_dropin(self, node: Node) -> str:
        """config.d/cluster.xml rendered from the clickhouse role's own template (macros,
        remote_servers with internal_replication, the ZooKeeper client section, the
        distributed_ddl queue), with this machine's loopback addresses and ports."""
        import jinja2

        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE_TEMPLATES)), trim_blocks=True,
                                 undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        return env.get_template(CLUSTER_TEMPLATE).render(
            ansible_managed="rendered by tests/lib/ch_cluster.py", clickhouse_config_root="yandex",
            clickhouse_cluster_name=self.cluster, clickhouse_shard="01", clickhouse_replica=node.name,
            clickhouse_interserver_host="127.0.0.1", clickhouse_cluster_hosts=[n.name for n in self.nodes],
            hostvars={n.name: {"ansible_host": "127.0.0.1", "clickhouse_tcp_port": n.tcp_port} for n in self.nodes},
            clickhouse_tcp_port=9000, clickhouse_user=USER, clickhouse_password=PASSWORD,
            clickhouse_zookeeper_nodes=[{"host": "127.0.0.1", "port": self.zookeeper.port}],
            # short: a killed replica's session (and its is_active node) goes within 2 s
            clickhouse_zookeeper_session_timeout_ms=2000)

    def _write_config(self, node: Node) -> None:
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (node.root / sub).mkdir(parents=True, exist_ok=True)
        (node.root / "config.d").mkdir(exist_ok=True)
        (node.root / "config.d" / "cluster.xml").write_text(self._cluster_dropin(node))
        (node.root / "config.xml").write_text(f"""<?xml version="1.0"?>
<!-- written by tests/lib/ch_cluster.py: test replica {node.name}, loopback only -->
<yandex>
    <logger><level>information</level>
        <log>{node.root}/log/clickhouse-server.log</log>
        <errorlog>{node.log}</errorlog><size>50M</size><count>2</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{node.tcp_port}</tcp_port>
    <http_port>{node.http_port}</http_port>
    <interserver_http_port>{node.interserver_port}</interserver_http_port>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>{node.root}/data/</path>
    <tmp_path>{node.root}/tmp/</tmp_path>
    <user_files_path>{node.root}/user_files/</user_files_path>
    <format_schema_path>{node.root}/format_schemas/</format_schema_path>
    <users_config>{node.root}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
""")
        (node.root / "users.xml").write_text(f"""<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
    <users>
        <default><password></password><networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile><quota>default</quota></default>
        <{USER}><password>{escape(PASSWORD)}</password><networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile><quota>default</quota></{USER}>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
""")

