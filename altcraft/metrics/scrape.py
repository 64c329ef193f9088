"""What Prometheus scrapes: the one definition of the platform's scrape configuration.

The targets come from two lists and nothing else: the process table (`akd --processes
--json`: every process with a `metrics` address serves GET /metrics there) and the
inventory (which hosts are in the groups that run those processes). Beside them: the
Pushgateway (the on-demand workers push there, altcraft/metrics/push.py), the node exporter
of every host (disks) and the stores' own endpoints (RabbitMQ's rabbitmq_prometheus plugin,
ClickHouse's <prometheus> endpoint).

Used by the distribution's prometheus role, which runs this file as a script on the Ansible
controller (standard library only, so the controller needs nothing but this checkout), and by
the tests, which import `scrape_config` and give the same answer to a real Prometheus.

A process that listens on a loopback address can be scraped only from its own host: on any
other host it is reported as a problem (`problems`), naming the process and the host, never
silently left out.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

JOB_PREFIX = "altcraft_"  # job of process NAME: altcraft_NAME (the alert rules match on it)
PUSHGATEWAY_JOB = "pushgateway"
NODE_JOB = "node"
RABBITMQ_JOB = "rabbitmq"
CLICKHOUSE_JOB = "clickhouse"
# Which inventory groups run a process ("*": every process not named). The altcraft role
# starts every implemented process on the control group; akmtad also runs on sending nodes.
DEFAULT_PLACEMENT: dict[str, list[str]] = {"*": ["control"], "akmtad": ["control", "sending"]}
DEFAULT_PORTS = {"node": 9100, "rabbitmq": 15692, "clickhouse": 9363}


def job_name(process: str) -> str:
    return f"{JOB_PREFIX}{process}"


def is_loopback(host: str) -> bool:
    """True for "localhost" and a loopback IP; a host name may resolve to anything: False."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def metric_processes(table: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of a process table that serve GET /metrics (and are exported)."""
    return [row for row in table if row.get("metrics")]


def hosts_of(groups: Mapping[str, Sequence[str]], names: Sequence[str]) -> list[str]:
    """The hosts of the named groups, each once, in inventory order."""
    seen: list[str] = []
    for group in names:
        for host in groups.get(group, ()):
            if host not in seen:
                seen.append(host)
    return seen


def scrape_config(table: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]],
                  addresses: Mapping[str, str], prometheus_host: str | None = None,
                  placement: Mapping[str, Sequence[str]] | None = None,
                  pushgateway: str | None = None, node_exporter: bool = True,
                  ports: Mapping[str, int] | None = None, scrape_interval: str = "15s",
                  evaluation_interval: str = "15s", rule_files: Sequence[str] = (),
                  alertmanagers: Sequence[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """Prometheus's configuration (prometheus.yml as a dict) and the problems found.

    table: `akd --processes --json`; groups: inventory group -> host names; addresses: host
    name -> the address Prometheus reaches it at; prometheus_host: the host name Prometheus
    runs on (a loopback listener is reachable from there only); pushgateway: "host:port".
    """
    placement = {**DEFAULT_PLACEMENT, **(placement or {})}
    ports = {**DEFAULT_PORTS, **(ports or {})}
    problems: list[str] = []
    jobs: list[dict[str, Any]] = []

    def address_of(host: str) -> str:
        return addresses.get(host) or host

    for row in metric_processes(table):
        name, port, listen = row["name"], int(row["metrics"]["port"]), str(row["metrics"]["host"])
        targets = []
        for host in hosts_of(groups, placement.get(name, placement["*"])):
            if is_loopback(listen):
                if host != prometheus_host:
                    problems.append(f"{name} on {host} listens on {listen}: Prometheus (on "
                                    f"{prometheus_host or 'another host'}) cannot reach it; set "
                                    f"PROCESSES.{name}.IP (altcraft_processes) to the host's address")
                    continue
                where = _join(listen, port)
            else:
                where = _join(address_of(host), port)
            targets.append({"targets": [where], "labels": {"host": host, "process": name}})
        if targets:
            jobs.append({"job_name": job_name(name), "metrics_path": "/metrics", "static_configs": targets})

    def per_host(job: str, hosts: Sequence[str], port: int, path: str = "/metrics",
                 loopback_here: bool = False) -> None:
        def where(h: str) -> str:
            return "127.0.0.1" if loopback_here and h == prometheus_host else address_of(h)
        # port 0: the store has no such endpoint (ClickHouse 18.16 has no <prometheus> section)
        if hosts and int(port) > 0:
            jobs.append({"job_name": job, "metrics_path": path, "static_configs": [
                {"targets": [_join(where(h), port)], "labels": {"host": h}} for h in hosts]})

    if node_exporter:
        # the monitoring host's own exporter listens on loopback (the prometheus role's
        # prometheus_node_exporter_listen), every other host's on its address
        per_host(NODE_JOB, hosts_of(groups, sorted(groups)), ports["node"], loopback_here=True)
    # per queue: the queue-depth alert needs each queue's own series
    per_host(RABBITMQ_JOB, list(groups.get("rabbitmq", ())), ports["rabbitmq"], "/metrics/per-object")
    per_host(CLICKHOUSE_JOB, list(groups.get("clickhouse", ())), ports["clickhouse"])
    if pushgateway:
        # honor_labels: the pushed job and instance are the worker's, not the gateway's
        jobs.append({"job_name": PUSHGATEWAY_JOB, "honor_labels": True,
                     "static_configs": [{"targets": [pushgateway]}]})

    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": list(rule_files),
        "scrape_configs": jobs,
    }
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    return config, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 altcraft/metrics/scrape.py",
        description="Print Prometheus's scrape configuration (JSON) for a process table and an "
                    "inventory, read as one JSON object on stdin: {table, groups, addresses, "
                    "prometheus_host, placement, pushgateway, node_exporter, ports, "
                    "scrape_interval, evaluation_interval, rule_files, alertmanagers}. "
                    "Output: {config, problems}. Exit 1 on unreadable input.")
    parser.parse_args(argv)
    try:
        given = json.load(sys.stdin)
        config, problems = scrape_config(**given)
    except (ValueError, TypeError, KeyError) as exc:
        print(f"scrape.py: bad input: {exc}", file=sys.stderr)
        return 1
    json.dump({"config": config, "problems": problems}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
