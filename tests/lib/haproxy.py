"""The balancer role's haproxy.cfg, rendered from the role's own template and defaults (as
Ansible renders it: trim_blocks), run by the machine's real HAProxy on loopback, in front of
app servers made of what an app server of the failsafe scheme runs for tracking: trkaction
(as `akd run` starts it: gunicorn) behind the nginx role's `trk` instance (TLS).

HAProxy passes TCP through to each app server's nginx and checks the readiness endpoint over
TLS, exactly as in production; only the addresses, ports, the check interval and the stats
socket's path are the test's. A missing haproxy (Debian's package) is installed when we are
root, else MissingPackage: a failure, never a skip.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import jinja2
import pika
import yaml

from altcraft import config as cfg
from altcraft.stores import broker
from tests.lib import ROOT
from tests.lib.cli import BIN
from tests.lib.nginx import Nginx
from tests.lib.packages import command
from tests.lib.ports import free_port, port_open
from tests.lib.wait import stop_processes, wait_for, wait_started

ROLE = ROOT / "roles" / "balancer"


def defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def frontend(name: str, **overrides) -> dict:
    """One of the role's frontends (check path, backend port) as its defaults define it."""
    (found,) = [dict(fe) for fe in defaults()["balancer_frontends"] if fe["name"] == name]
    return {**found, **overrides}


def render(frontends: list[dict], hostvars: dict[str, dict], **overrides) -> str:
    """The role's haproxy.cfg for `frontends` and the app servers `hostvars` (inventory name ->
    host variables: ansible_host, balancer_backend_ports)."""
    facts = defaults()
    facts.update(balancer_frontends=frontends, balancer_backends=list(hostvars), hostvars=hostvars,
                 ansible_managed="rendered by tests/lib/haproxy.py", **overrides)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    return env.get_template("etc/haproxy/haproxy.cfg.j2").render(**facts)


class HAProxy:
    """A rendered haproxy.cfg run in the foreground (-db), with its runtime API."""

    def __init__(self, workdir: Path, text: str, listen: int):
        self.binary = command("haproxy", "haproxy")
        self.socket = workdir / "haproxy.sock"
        self.listen = listen
        self.conf = workdir / "haproxy.cfg"
        self.conf.write_text(text)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> HAProxy:
        # the role's own validation (`validate: haproxy -c -q -f %s`)
        checked = subprocess.run([self.binary, "-c", "-q", "-f", str(self.conf)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.process = subprocess.Popen([self.binary, "-db", "-f", str(self.conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_started(self.process, lambda: self.socket.exists() and port_open("127.0.0.1", self.listen),
                     "haproxy listening", lambda: self.process.stderr.read().decode(), timeout=20)
        return self

    def __exit__(self, *exc) -> None:
        stop_processes(self.process, timeout=20)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stat(self, backend: str, server: str) -> dict:
        """The server's row of `show stat`: status (UP, DOWN, "UP 1/2" while changing...),
        stot (connections it was given), check_status, ..."""
        text = self.command("show stat").lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            if row["pxname"] == backend and row["svname"] == server:
                return row
        raise AssertionError(f"no server {backend}/{server} in haproxy's stats")

    def status(self, backend: str, server: str) -> str:
        return self.stat(backend, server)["status"]


class AppServer:
    """trkaction (`akd run`, in a session of its own so that a kill takes all its workers) and
    the nginx role's trk instance in front of it, on loopback ports of its own."""

    def __init__(self, main_json: Path, workdir: Path):
        self.main_json = main_json
        self.config, _ = cfg.load(main_json)
        self.port = self.config.process_settings("trkaction").PORT
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "trkaction.log"
        self.access_log = workdir / "trk-access.log"  # nginx's (nginx_log_dir is the workdir)
        self.nginx = Nginx("trk", workdir, process_ports={"trkaction": self.port})
        self.trkaction: subprocess.Popen | None = None

    def answered(self, paths: set[str]) -> set[str]:
        """Those of `paths` this server's nginx answered (its access log has the request)."""
        text = self.access_log.read_text() if self.access_log.exists() else ""
        return {path for path in paths if path in text}

    @property
    def https_port(self) -> int:
        return self.nginx.instance["https_port"]

    def launch(self) -> AppServer:
        """Starts trkaction; `ready` waits for it and starts nginx."""
        with self.log.open("ab") as log:
            self.trkaction = subprocess.Popen([str(BIN / "akd"), "run", "trkaction", "--config", str(self.main_json)],
                                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def ready(self) -> AppServer:
        wait_started(self.trkaction, lambda: _ready(self.port), f"trkaction on port {self.port} ready", self.log,
                     timeout=60)
        self.nginx.__enter__()
        return self

    def start(self) -> AppServer:
        return self.launch().ready()

    def kill(self) -> None:
        """SIGKILL to everything the app server runs, as when the machine dies."""
        nginx = self.nginx.process
        pids = [nginx.pid, *_children(nginx.pid)]  # nginx's workers outlive a killed master
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        os.killpg(self.trkaction.pid, signal.SIGKILL)
        nginx.wait(timeout=10)
        self.trkaction.wait(timeout=10)
        wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), timeout=10, what="nginx gone")

    def stop(self) -> None:
        """Quick shutdown (SIGINT) of what still runs; `stopped` waits for it."""
        if self.nginx.process is not None and self.nginx.process.poll() is None:
            self.nginx.process.terminate()
        if self.trkaction is not None and self.trkaction.poll() is None:
            self.trkaction.send_signal(signal.SIGINT)

    def stopped(self) -> None:
        if self.nginx.process is not None:
            self.nginx.process.wait(timeout=20)
        if self.trkaction is not None:
            try:
                self.trkaction.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.trkaction.pid, signal.SIGKILL)


def _ready(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/trkaction/readiness")
        return connection.getresponse().status == 200
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def second_server_config(main_json: Path, basedir: Path, rabbitmq_port: int) -> Path:
    """main.json of another app server of the same platform: the same stores, vhost and
    secrets; its own directory (spool, pids) and trkaction port, and RabbitMQ reached on
    `rabbitmq_port` (a Relay, so that the test can cut this server's way to the broker)."""
    settings = json.loads(main_json.read_text())
    basedir.mkdir(parents=True, exist_ok=True)
    settings["BASEDIR"] = str(basedir)
    settings["PROCESSES"]["trkaction"] = {**settings["PROCESSES"]["trkaction"], "PORT": free_port()}
    settings["RABBITMQ_PORT"] = rabbitmq_port
    path = basedir / "main.json"
    path.write_text(json.dumps(settings, indent=2))
    return path


class Relay:
    """A TCP relay from a loopback port of its own to `target`: one app server's way to a store,
    which the test can cut (nothing listens, every relayed connection is closed: a network
    partition for that server only) and restore on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> Relay:
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()
        return self

    def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def _accept(self, server: socket.socket) -> None:
        while self._server is server:
            try:
                client, _ = server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.difference_update((source, sink))
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def https_get(port: int, path: str, timeout: float = 10) -> int:
    """Status of a GET over a new TLS connection (certificate not checked: a test's own)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    try:
        connection.request("GET", path, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"})
        return connection.getresponse().status
    finally:
        connection.close()


def take_events(config, queue: str, complete: Callable[[list[dict]], bool], timeout: float = 30) -> list[dict]:
    """Takes (and acks) every event in `queue` of config's vhost: waits until `complete(events)`
    or `timeout`, then takes what is still there (the caller says what is missing)."""
    events: list[dict] = []
    with pika.BlockingConnection(broker.parameters(config, app="altcraft-test")) as connection:
        channel = connection.channel()

        def drain() -> list[dict]:
            while True:
                method, _, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return events
                events.append(json.loads(body))

        try:
            wait_for(lambda: complete(drain()), timeout=timeout, what=f"the events in {queue}")
        except AssertionError:
            pass
        drain()
    return events
