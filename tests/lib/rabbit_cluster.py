"""A three-node RabbitMQ cluster on loopback, for the fail-safe test and bench/quorum.py.

Each node is Debian's rabbitmq-server run as whoever runs the test (the scripts in
/usr/lib/rabbitmq/bin, as tests/harness/servers.sh does), with its own node name, AMQP port
and distribution port, all sharing one epmd on a port of their own (never the system's 4369)
and one Erlang cookie, with data, logs and config under a temporary directory that `stop`
removes. The three start together: the first forms the cluster (its default vhost and user
made at first boot, no CLI call), the others join it at boot through classic peer discovery
(retrying until it is up), which is what `rabbitmqctl join_cluster` does by hand (the
Ansible role uses that).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.lib.ports import free_port, port_open
from tests.lib.wait import wait_for

RMQ_BIN = Path("/usr/lib/rabbitmq/bin")
HOST = "127.0.0.1"
USER, PASSWORD, VHOST = "altcraft", "altcraft-cluster-test", "altcraft"


class ClusterError(RuntimeError):
    """A node did not start or answer; the message carries its log's last lines."""


@dataclass
class Node:
    name: str  # Erlang node name, e.g. rabbit-a@localhost
    port: int  # AMQP
    dist_port: int
    directory: Path
    process: subprocess.Popen | None = field(default=None, repr=False)
    prometheus_port: int = field(default_factory=free_port)  # used when the plugin is on

    @property
    def pid_file(self) -> Path:
        return self.directory / "rabbitmq.pid"

    def beam_pid(self) -> int | None:
        """The node's Erlang VM, if it runs (a stale pid file names no beam process)."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
            if b"beam" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return None
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted((self.directory / "log").glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"---- {path.name} ----\n" + "\n".join(text))
        return "\n".join(out)


def _role_prometheus_lines(port: int) -> list[str]:
    """The plugin's lines of the rabbitmq role's rabbitmq.conf, rendered for a loopback port."""
    import jinja2

    templates = Path(__file__).resolve().parents[2] / "roles" / "rabbitmq" / "templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), trim_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["bool"] = bool
    text = env.get_template("etc/rabbitmq/rabbitmq.conf.j2").render(
        ansible_managed="", rabbitmq_listen_address=HOST, rabbitmq_port=5672, rabbitmq_extra_listen_addresses=[],
        rabbitmq_vm_memory_high_watermark=0.4, rabbitmq_disk_free_limit="2GB", rabbitmq_clustered=False,
        rabbitmq_prometheus_port=port, rabbitmq_prometheus_address=HOST)
    return [line for line in text.splitlines() if line.startswith("prometheus.")]


class RabbitCluster:
    """Three nodes a, b, c. `start` forms the cluster; `kill(i)` is a kill -9 of node i's
    Erlang VM; `restart(i)` starts it again on the same data (it rejoins by itself);
    `stop` kills every node and the epmd, and removes the directory."""

    def __init__(self, size: int = 3, timeout: float = 60.0, prometheus: bool = False):
        self.timeout = timeout
        # the rabbitmq_prometheus plugin on each node, with the rabbitmq role's settings
        self.prometheus = prometheus
        self.base = Path(tempfile.mkdtemp(prefix="altcraft-rmq-cluster-"))
        self.home = self.base / "home"
        self.epmd_port = free_port()
        self.nodes = [
            Node(f"rabbit-{chr(ord('a') + i)}@localhost", free_port(), free_port(), self.base / chr(ord("a") + i))
            for i in range(size)
        ]

    # -- facts for main.json ---------------------------------------------------------------
    def main_json(self) -> dict:
        """The RABBITMQ_* keys of main.json for this cluster (first node first)."""
        return {"RABBITMQ_HOST": HOST, "RABBITMQ_PORT": self.nodes[0].port,
                "RABBITMQ_NODES": [{"HOST": HOST, "PORT": node.port} for node in self.nodes],
                "RABBITMQ_VHOST": VHOST, "RABBITMQ_USER": USER, "RABBITMQ_PASS": PASSWORD}

    # -- processes -------------------------------------------------------------------------
    def _env(self, node: Node) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(self.home),  # server and CLI share our .erlang.cookie
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_CONF_ENV_FILE": str(node.directory / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(node.directory / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.directory / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.directory / "log"),
            "RABBITMQ_PID_FILE": str(node.pid_file),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        })
        return env

    def _write_config(self, node: Node, join: Node | None) -> None:
        for sub in ("mnesia", "log"):
            (node.directory / sub).mkdir(parents=True, exist_ok=True)
        (node.directory / "rabbitmq-env.conf").write_text("")
        (node.directory / "enabled_plugins").write_text(
            "[rabbitmq_prometheus].\n" if self.prometheus else "[].\n")
        (node.directory / "advanced.config").write_text("[].\n")
        lines = [
            "# written by tests/lib/rabbit_cluster.py",
            f"listeners.tcp.default = {HOST}:{node.port}",
            "listeners.ssl = none",
            "log.file.level = info",
            "log.console = false",
            "cluster_partition_handling = pause_minority",
            f"default_vhost = {VHOST}",
            f"default_user = {USER}",
            f"default_pass = {PASSWORD}",
            "default_user_tags.administrator = true",
            "default_permissions.configure = .*",
            "default_permissions.read = .*",
            "default_permissions.write = .*",
        ]
        if join is not None:
            # started together with the first node: they retry until it can take them
            lines += ["cluster_formation.peer_discovery_backend = classic_config",
                      f"cluster_formation.classic_config.nodes.1 = {join.name}",
                      "cluster_formation.discovery_retry_limit = 120",
                      "cluster_formation.discovery_retry_interval = 500"]
        if self.prometheus:
            lines += _role_prometheus_lines(node.prometheus_port)
        (node.directory / "rabbitmq.conf").write_text("\n".join(lines) + "\n")

    def _launch(self, node: Node) -> None:
        log = open(node.directory / "log" / "startup.out", "ab")
        node.process = subprocess.Popen([str(RMQ_BIN / "rabbitmq-server")], env=self._env(node),
                                        cwd=node.directory, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def _await(self, node: Node) -> None:
        deadline = time.monotonic() + self.timeout
        while not port_open(HOST, node.port, timeout=0.5):
            if node.process is not None and node.process.poll() is not None:
                raise ClusterError(f"{node.name} exited during startup\n{node.log_tail()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{node.name}: AMQP port {node.port} not open after "
                                   f"{self.timeout:.0f}s\n{node.log_tail()}")
            time.sleep(0.2)

    def ctl(self, node: Node, *args: str, timeout: float = 60.0) -> str:
        """rabbitmqctl against `node`; raises ClusterError with its output on failure."""
        result = subprocess.run([str(RMQ_BIN / "rabbitmqctl"), "-n", node.name, *args], env=self._env(node),
                                cwd=node.directory, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise ClusterError(f"rabbitmqctl {' '.join(args)} on {node.name}: exit {result.returncode}\n"
                               f"{result.stdout}{result.stderr}")
        return result.stdout

    def start(self) -> RabbitCluster:
        self.home.mkdir(parents=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(os.urandom(20).hex().upper())
        cookie.chmod(0o400)
        first, *others = self.nodes
        self._write_config(first, None)
        for node in others:
            self._write_config(node, first)
        try:
            for node in self.nodes:
                self._launch(node)
            for node in self.nodes:
                self._await(node)
            wait_for(lambda: len(self.running()) == len(self.nodes), timeout=self.timeout,
                     what="every node running in one cluster", every=0.5)
            self.enable_feature_flags()
        except BaseException:
            self.stop()
            raise
        return self

    def feature_flags(self, node: Node) -> dict[str, str]:
        """Each feature flag's state on `node` ("enabled", "disabled", ...)."""
        listed = json.loads(self.ctl(node, "list_feature_flags", "--formatter", "json"))
        return {flag["name"]: flag["state"] for flag in listed}

    def enable_feature_flags(self) -> None:
        """Every flag the cluster supports, enabled, as the rabbitmq role does after a join.

        A node that boots fresh enables every flag by itself, but nodes that form a cluster
        while booting together can come up with some disabled (seen once on a fresh CI
        machine: quorum queues refused on the first node), and the platform needs
        `quorum_queue`."""
        self.ctl(self.nodes[0], "enable_feature_flag", "all")
        for node in self.nodes:
            disabled = sorted(name for name, state in self.feature_flags(node).items() if state != "enabled")
            if disabled:
                raise ClusterError(f"{node.name}: feature flags still disabled after enable_feature_flag all: "
                                   f"{', '.join(disabled)}\n{node.log_tail()}")

    def running(self, via: Node | None = None) -> list[str]:
        """Names of the running nodes, as the cluster itself reports them."""
        via = via or next(n for n in self.nodes if n.beam_pid() and port_open(HOST, n.port, 0.5))
        status = json.loads(self.ctl(via, "cluster_status", "--formatter", "json"))
        return sorted(status.get("running_nodes", []))

    def connected_node(self) -> int | None:
        """Index of the node that has an AMQP client connection open (the only clients are
        the test's own), read from the kernel's table of TCP sockets; None when none has."""
        ports = {node.port: index for index, node in enumerate(self.nodes)}
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            remote_port, state = int(fields[2].split(":")[1], 16), fields[3]
            if state == "01" and remote_port in ports:  # ESTABLISHED, we are the client
                return ports[remote_port]
        return None

    def kill(self, index: int) -> None:
        """kill -9 of the node's Erlang VM: no goodbye to its clients or its peers."""
        node = self.nodes[index]
        pid = node.beam_pid()
        if pid is None:
            raise ClusterError(f"{node.name}: no pid file")
        os.kill(pid, signal.SIGKILL)
        if node.process is not None:
            node.process.wait(timeout=30)
        wait_for(lambda: not port_open(HOST, node.port, 0.2), timeout=10, what=f"{node.name} gone")

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        self._launch(node)
        self._await(node)

    def log_tails(self, lines: int = 40) -> str:
        """The warnings and errors each node logged (for a failing test's message)."""
        out = []
        for node in self.nodes:
            log = node.directory / "log" / f"{node.name}.log"
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            worth = [line for line in text if "[info]" not in line or "Running boot step" not in line][-lines:]
            state = "running" if node.beam_pid() else "not running"
            if node.process is not None and node.process.poll() is not None:
                state += f", its launcher exited with {node.process.returncode}"
            out.append(f"---- {node.name} ({state}) ----\n" + "\n".join(worth))
        return "\n".join(out)

    def stop(self) -> None:
        for node in self.nodes:
            pid = node.beam_pid()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if node.process is not None:
                try:
                    os.killpg(node.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                node.process.wait(timeout=30)
        # our epmd (started by the first node, as a daemon): the one whose HOME is ours
        # (`epmd -kill` refuses while the killed nodes are still registered)
        for pid in self._epmd_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not os.environ.get("ALTCRAFT_KEEP_RABBIT_CLUSTER"):  # set it to read a failed run's logs
            shutil.rmtree(self.base, ignore_errors=True)

    def _epmd_pids(self) -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if (proc / "comm").read_text().strip() != "epmd":
                    continue
                environ = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"HOME={self.home}".encode() in environ:
                found.append(int(proc.name))
        return found

    def __enter__(self) -> RabbitCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
