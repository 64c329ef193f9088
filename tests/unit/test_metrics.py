"""PROMETHEUS_METRICS (main.json), where each process serves its metrics, the scrape
configuration (altcraft/metrics/scrape.py) and the Pushgateway push's failure handling."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from altcraft import config as cfg
from altcraft.metrics import scrape
from altcraft.metrics.push import Pusher
from altcraft.services import campaign
from tests.lib import ROOT
from tests.lib.ports import free_port

SECRETS = {"PRIVATE_KEY": "p" * 32, "WEBAPI_PRIVATE_KEY": "w" * 32, "TRACKING_CRYPT_KEY": "t" * 32}


def check(**keys):
    return cfg.validate({**SECRETS, **keys}, frozenset({"api"}))


def test_defaults_export_everything_and_push_to_loopback():
    config, report = check()
    assert report.ok
    metrics = config.PROMETHEUS_METRICS
    assert metrics.ENABLE and metrics.PROCESSES == []
    assert metrics.PUSHGATEWAY_URL == "http://127.0.0.1:9091"
    assert metrics.exports("campaign") and metrics.exports("api")


def test_enable_and_processes_choose_what_is_exported():
    config, _ = check(PROMETHEUS_METRICS={"PROCESSES": ["api", "campaign"]})
    assert config.PROMETHEUS_METRICS.exports("campaign")
    assert not config.PROMETHEUS_METRICS.exports("webcontrol")
    assert config.metrics_address("webcontrol") is None
    config, _ = check(PROMETHEUS_METRICS={"ENABLE": False})
    assert not config.PROMETHEUS_METRICS.exports("campaign")
    assert config.metrics_address("api") is None


def test_bad_settings_are_named():
    _, report = check(PROMETHEUS_METRICS={"PROCESSES": ["api", "nosuch"], "PUSHGATEWAY_URL": "ftp://gw:21",
                                          "PUSH_INTERVAL_SECONDS": 0, "WORKER_PORTS": {"procactions": 70000}})
    errors = {i.key: i.message for i in report.errors}
    assert "no such process: nosuch" in errors["PROMETHEUS_METRICS.PROCESSES"]
    assert "http(s)://host[:port]" in errors["PROMETHEUS_METRICS.PUSHGATEWAY_URL"]
    assert "PROMETHEUS_METRICS.PUSH_INTERVAL_SECONDS" in errors
    assert "not a TCP port" in errors["PROMETHEUS_METRICS.WORKER_PORTS.procactions"]
    _, report = check(PROMETHEUS_METRICS={"PUSHGATEWAY_URL": "http://user:secret@gw:9091"})
    [issue] = report.errors
    assert "no user or password" in issue.message and "secret" not in issue.message


def test_metrics_addresses():
    config, _ = check(PROCESSES={"api": {"IP": "10.0.0.5", "PORT": 9801}})
    assert config.metrics_address("api") == ("10.0.0.5", 9801)  # the HTTP process's own port
    assert config.metrics_address("akmtad") == ("127.0.0.1", 13444)  # its control port
    assert config.metrics_address("procactions") == ("127.0.0.1", 8913)  # WORKER_PORTS
    assert config.metrics_address("campaign") is None  # pushes instead
    assert config.metrics_address("trkread") is None  # planned


TABLE = [
    {"name": "api", "metrics": {"host": "10.0.1.11", "port": 8801}},
    {"name": "trkaction", "metrics": {"host": "127.0.0.1", "port": 8095}},
    {"name": "akmtad", "metrics": {"host": "0.0.0.0", "port": 13444}},
    {"name": "campaign", "metrics": None},
]
GROUPS = {"control": ["app1", "app2"], "sending": ["mta1"], "rabbitmq": ["db1"], "clickhouse": ["ch1"],
          "monitoring": ["app1"]}
ADDRESSES = {"app1": "10.0.1.11", "app2": "10.0.1.12", "mta1": "10.0.5.21", "db1": "10.0.2.11", "ch1": "10.0.3.11"}


def targets(config, job):
    [found] = [j for j in config["scrape_configs"] if j["job_name"] == job]
    return [(c["targets"][0], c.get("labels", {}).get("host")) for c in found["static_configs"]]


def test_scrape_config_from_the_table_and_the_inventory():
    config, problems = scrape.scrape_config(TABLE, GROUPS, ADDRESSES, prometheus_host="app1",
                                            pushgateway="10.0.1.11:9091", rule_files=["/r.yml"])
    assert targets(config, "altcraft_api") == [("10.0.1.11:8801", "app1"), ("10.0.1.12:8801", "app2")]
    # loopback: reachable from its own host only, and the other host is a named problem
    assert targets(config, "altcraft_trkaction") == [("127.0.0.1:8095", "app1")]
    assert problems == ["trkaction on app2 listens on 127.0.0.1: Prometheus (on app1) cannot reach it; "
                        "set PROCESSES.trkaction.IP (altcraft_processes) to the host's address"]
    assert targets(config, "altcraft_akmtad") == [("10.0.1.11:13444", "app1"), ("10.0.1.12:13444", "app2"),
                                                  ("10.0.5.21:13444", "mta1")]
    assert not [j for j in config["scrape_configs"] if j["job_name"] == "altcraft_campaign"]
    assert {h for _, h in targets(config, "node")} == {"app1", "app2", "mta1", "db1", "ch1"}
    # the monitoring host's own node exporter listens on loopback (the prometheus role)
    assert ("127.0.0.1:9100", "app1") in targets(config, "node")
    assert ("10.0.1.12:9100", "app2") in targets(config, "node")
    assert targets(config, "rabbitmq") == [("10.0.2.11:15692", "db1")]
    assert targets(config, "clickhouse") == [("10.0.3.11:9363", "ch1")]
    [gateway] = [j for j in config["scrape_configs"] if j["job_name"] == "pushgateway"]
    assert gateway["honor_labels"] is True and gateway["static_configs"] == [{"targets": ["10.0.1.11:9091"]}]
    assert config["rule_files"] == ["/r.yml"]


def test_a_store_without_a_metrics_endpoint_is_not_scraped():
    """Port 0 (site.yml's choice for Debian's ClickHouse 18.16, which has no <prometheus>):
    no target that could only be down."""
    config, _ = scrape.scrape_config(TABLE, GROUPS, ADDRESSES, prometheus_host="app1",
                                     ports={"clickhouse": "0", "rabbitmq": "15692"})
    assert not [j for j in config["scrape_configs"] if j["job_name"] == "clickhouse"]
    assert targets(config, "rabbitmq") == [("10.0.2.11:15692", "db1")]


def test_scrape_script_runs_on_the_standard_library_alone(tmp_path):
    """The role runs the file with the controller's Python: no package of ours is importable."""
    given = {"table": TABLE, "groups": GROUPS, "addresses": ADDRESSES, "prometheus_host": "app1"}
    result = subprocess.run([sys.executable, "-S", "-I", str(ROOT / "altcraft" / "metrics" / "scrape.py")],
                            input=json.dumps(given), capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["config"] == scrape.scrape_config(**given)[0] and len(out["problems"]) == 1
    bad = subprocess.run([sys.executable, "-I", str(ROOT / "altcraft" / "metrics" / "scrape.py")],
                         input="{}", capture_output=True, text=True)
    assert bad.returncode == 1 and "bad input" in bad.stderr


def test_a_failing_push_is_logged_once_and_never_raises(caplog):
    settings = cfg.PrometheusMetrics(PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port()}", PUSH_TIMEOUT_SECONDS=1)
    pusher = Pusher(settings, "campaign", "altcraft_campaign", campaign.METRICS)
    with caplog.at_level(logging.WARNING, logger="altcraft.metrics.push"):
        assert pusher.push() is False
        assert pusher.push() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "altcraft_campaign" in warnings[0].getMessage() and settings.PUSHGATEWAY_URL in warnings[0].getMessage()


def test_a_run_counts_its_outcome_and_survives_a_dead_gateway():
    settings = cfg.PrometheusMetrics(PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port()}", PUSH_TIMEOUT_SECONDS=1)
    metrics = campaign.RunMetrics(Pusher(settings, "campaign", "altcraft_campaign", campaign.METRICS))
    failures = campaign.FAILURES._value.get()
    runs = campaign.RUNS._value.get()
    assert metrics.run(lambda: None) is True
    assert campaign.LAST_SUCCESS._value.get() > 0
    try:
        metrics.run(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("the run's own error must reach the caller")
    assert campaign.FAILURES._value.get() == failures + 1
    assert campaign.RUNS._value.get() == runs + 2
    assert campaign.RUNNING._value.get() == 0


class _FailingStore:
    def insert(self, table, columns, rows):
        raise ConnectionError("ClickHouse away")

    def table(self, name):
        return name


def test_procactions_counts_failed_inserts():
    from altcraft.services import procactions

    store = procactions.CountedInserts(_FailingStore())
    before = procactions.INSERT_ERRORS._value.get()
    try:
        store.insert("events", ["a"], [[1]])
    except ConnectionError:
        pass
    else:
        raise AssertionError("the insert's error must reach the writer")
    assert procactions.INSERT_ERRORS._value.get() == before + 1
    assert store.table("events") == "events"  # everything else is the store's own
