"""Prometheus for the tests: promtool on the shipped rules, and a real Prometheus and
Pushgateway on loopback ports with their data in a temporary directory.

The binaries are Debian's prometheus and prometheus-pushgateway, which
tests/harness/servers.sh installs (`install`, also part of `start`). A missing binary raises
MissingPackage: the test fails with it, it is never skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.lib import ROOT
from tests.lib.packages import MissingPackage
from tests.lib.ports import free_port, port_open
from tests.lib.wait import stop_processes, wait_started

RULES = ROOT / "roles" / "prometheus" / "files" / "altcraft-rules.yml"
RULES_TEST = RULES.with_name("altcraft-rules.test.yml")
PACKAGE_OF = {"promtool": "prometheus", "prometheus": "prometheus",
              "prometheus-pushgateway": "prometheus-pushgateway"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingPackage(f"{name} is missing: tests/harness/servers.sh install (as root) installs "
                             f"Debian's {PACKAGE_OF[name]}")
    return path


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def rules_with_for(source: Path, target: Path, duration: str) -> Path:
    """A copy of the rules with every `for:` set to `duration` (the tests' short waits; the
    shipped file keeps its production values)."""
    data = yaml.safe_load(source.read_text())
    for group in data["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = duration
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


class _Server:
    def __init__(self, argv: list[str], port: int, log: Path, ready_path: str):
        self.port = port
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT)
        wait_started(self.process, lambda: self._ready(ready_path), f"{argv[0]} on 127.0.0.1:{port} ({log})", log)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self, path: str) -> bool:
        if not port_open("127.0.0.1", self.port):
            return False
        try:
            _get(self.base + path)
            return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_processes(self.process, timeout=15)
        self._out.close()


class Pushgateway(_Server):
    def __init__(self, workdir: Path):
        port = free_port()
        # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: this one
        # keeps its metrics in memory, so no run sees another's
        super().__init__([tool("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}",
                          "--persistence.file="],
                         port, workdir / "pushgateway.log", "/-/ready")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics(self) -> str:
        return _get(self.base + "/metrics").decode()


class Prometheus(_Server):
    """`config`: prometheus.yml as a dict (altcraft.metrics.scrape.scrape_config's)."""

    def __init__(self, workdir: Path, config: dict[str, Any]):
        port = free_port()
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        check = promtool("check", "config", str(path))
        assert check.returncode == 0, check.stdout + check.stderr
        super().__init__([tool("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={workdir / 'data'}",
                          f"--web.listen-address=127.0.0.1:{port}"],
                         port, workdir / "prometheus.log", "/-/ready")

    def api(self, path: str, **params: str) -> Any:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        answer = json.loads(_get(f"{self.base}/api/v1/{path}{query}"))
        assert answer["status"] == "success", answer
        return answer["data"]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["state"] == state]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]
