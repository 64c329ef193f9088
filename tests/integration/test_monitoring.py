"""Monitoring with a real Prometheus and Pushgateway on loopback ports: the scrape
configuration the prometheus role writes (altcraft/metrics/scrape.py, from `akd --processes
--json` and the inventory) scrapes real platform processes under akd; a stopped process
raises the shipped "process down" alert; a campaign run pushes its metrics, which the
Pushgateway and Prometheus both show.

Only here, the rules are loaded with `for: 2s` and scraped/evaluated every second
(tests/lib/prometheus.rules_with_for); the shipped file keeps its production durations, which
its promtool unit tests cover (tests/unit/test_prometheus_rules.py)."""

from __future__ import annotations

import pytest

from altcraft.config import PrometheusMetrics
from altcraft.metrics.push import Pusher
from altcraft.metrics.scrape import scrape_config
from altcraft.services.campaign import METRICS, PUSH_JOB, RunMetrics
from tests.lib import broker
from tests.lib.cli import run, run_json
from tests.lib.mta import Pipeline
from tests.lib.ports import free_port
from tests.lib.prometheus import RULES, Prometheus, Pushgateway, rules_with_for
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration

SCRAPED = ["api", "trkaction", "procactions"]  # two HTTP processes, a worker on its metrics port


@pytest.fixture(scope="module")
def monitored(harness, tmp_path_factory):
    """api and trkaction under akd, a Pushgateway, and Prometheus scraping them all (one set
    for the module: the campaign test runs first, the one that stops a process last)."""
    workdir = tmp_path_factory.mktemp("monitoring")
    basedir = workdir / "akd"
    basedir.mkdir()
    vhost = broker.add_vhost(harness)
    gateway = Pushgateway(workdir)
    pipeline = Pipeline(harness, basedir, free_port(), vhost,
                        processes={"api": {"PORT": free_port(), "WORKERS": 1},
                                   "trkaction": {"PORT": free_port(), "WORKERS": 1}},
                        settings={"AKD": {"START_SECONDS": 1, "START_RETRIES": 2, "BACKOFF_INITIAL": 0.3,
                                          "STOP_TIMEOUT": 5},  # akd start returns once they lived 1 s
                                  "PROMETHEUS_METRICS": {"PROCESSES": SCRAPED + ["campaign"],
                                                         "PUSHGATEWAY_URL": f"http://{gateway.address}",
                                                         "PUSH_INTERVAL_SECONDS": 1, "INSTANCE": "test-host",
                                                         "WORKER_PORTS": {"procactions": free_port()}}})
    prometheus = None
    try:
        code, table = run_json("akd", "--processes", config=pipeline.main_json)
        assert code == 0
        config, problems = scrape_config(
            table, {"control": ["localhost"]}, {"localhost": "127.0.0.1"}, prometheus_host="localhost",
            pushgateway=gateway.address, node_exporter=False, scrape_interval="1s", evaluation_interval="1s",
            rule_files=[str(rules_with_for(RULES, workdir / "rules.yml", "2s"))])
        assert problems == []
        # PROMETHEUS_METRICS.PROCESSES chose the jobs: the three processes and the gateway
        assert [j["job_name"] for j in config["scrape_configs"]] == [
            "altcraft_api", "altcraft_trkaction", "altcraft_procactions", "pushgateway"]
        pipeline.start(*SCRAPED)
        prometheus = Prometheus(workdir, config)
        yield pipeline, prometheus, gateway
    finally:
        if prometheus is not None:
            prometheus.stop()
        gateway.stop()
        pipeline.stop()
        broker.delete_vhost(vhost)


def test_a_campaign_run_pushes_its_metrics(monitored):
    pipeline, prometheus, gateway = monitored
    assert "altcraft_campaign" not in gateway.metrics()  # a gateway of its own, empty
    setup = pipeline.setup_campaign(7)
    pipeline.platform.campaigns.start(setup["account"]["id"], setup["campaign"]["id"])
    pipeline.start("campaign")
    wait_for(lambda: pipeline.campaign(setup)["state"] == "finished", 60, "the campaign to finish")

    line = (f'altcraft_campaign_messages_published_total{{instance="test-host",job="{PUSH_JOB}"}} 7')
    wait_for(lambda: line in gateway.metrics(), 20, f"{line} on the Pushgateway")
    assert f'altcraft_campaign_failures_total{{instance="test-host",job="{PUSH_JOB}"}} 0' in gateway.metrics()
    assert 'altcraft_campaign_last_success_timestamp_seconds{instance="test-host"' in gateway.metrics()

    # and through Prometheus (honor_labels: the worker's job and instance, not the gateway's)
    def scraped():
        return prometheus.query(f'altcraft_campaign_messages_published_total{{job="{PUSH_JOB}"}}')

    samples = wait_for(scraped, 20, "the pushed counter in Prometheus")
    assert len(samples) == 1, samples
    assert samples[0]["metric"]["instance"] == "test-host" and float(samples[0]["value"][1]) == 7


def test_a_run_pushes_while_it_runs(monitored):
    """The push every PUSH_INTERVAL_SECONDS during a run (the campaign above ends too soon to
    show it): RunMetrics and its Pusher as the worker uses them, against the real gateway."""
    _, _, gateway = monitored
    settings = PrometheusMetrics(PUSHGATEWAY_URL=f"http://{gateway.address}", PUSH_INTERVAL_SECONDS=1,
                                 INSTANCE="in-run")
    metrics = RunMetrics(Pusher(settings, "campaign", PUSH_JOB, METRICS))
    running = f'altcraft_campaign_running{{instance="in-run",job="{PUSH_JOB}"}} 1'
    assert metrics.run(lambda: wait_for(lambda: running in gateway.metrics(), 20, "a push during the run"))
    assert f'altcraft_campaign_running{{instance="in-run",job="{PUSH_JOB}"}} 0' in gateway.metrics()


def test_targets_up_then_a_stopped_process_fires_process_down(monitored):
    pipeline, prometheus, _ = monitored

    def all_up():
        targets = prometheus.targets()
        return len(targets) == 4 and all(t["health"] == "up" for t in targets) and targets

    targets = wait_for(all_up, 30, "every target up")
    assert {t["labels"]["job"] for t in targets} == {"altcraft_api", "altcraft_trkaction", "altcraft_procactions",
                                                      "pushgateway"}
    # procactions' ClickHouse insert counters, which the insert-errors alert reads, are scraped
    [errors] = prometheus.query("altcraft_procactions_clickhouse_insert_errors_total")
    assert errors["metric"]["process"] == "procactions" and float(errors["value"][1]) == 0
    # the readiness metric every HTTP process serves, scraped: both ready
    ready = wait_for(lambda: len(prometheus.query("altcraft_readiness == 1")) == 2, 20, "both processes ready")
    assert ready
    assert prometheus.alerts() == []

    stopped = run("akd", "stop", "trkaction", config=pipeline.main_json)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr

    def down_alert():
        return [a for a in prometheus.alerts() if a["labels"]["alertname"] == "AltcraftProcessDown"]

    [alert] = wait_for(down_alert, 30, "AltcraftProcessDown firing")
    assert alert["labels"]["process"] == "trkaction" and alert["labels"]["job"] == "altcraft_trkaction"
    assert alert["labels"]["severity"] == "critical"
    # only the stopped one
    assert [a["labels"]["process"] for a in down_alert()] == ["trkaction"]
