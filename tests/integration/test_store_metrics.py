"""The stores' own Prometheus endpoints the prometheus role scrapes (altcraft/metrics/scrape.py):
RabbitMQ's rabbitmq_prometheus plugin, enabled with the rabbitmq role's settings, on Debian's
RabbitMQ (one node of tests/lib/rabbit_cluster.py), answers /metrics/per-object with each
queue's depth under the name the RabbitMQQueueGrowing alert reads. (ClickHouse's <prometheus>
section needs a newer ClickHouse than Debian's 18.16: not run here.)"""

from __future__ import annotations

import urllib.request

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.lib import rabbit_cluster
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node():
    cluster = rabbit_cluster.RabbitCluster(size=1, prometheus=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_rabbitmq_prometheus_plugin_shows_each_queues_depth(node):
    first = node.nodes[0]
    params = pika.ConnectionParameters(host=rabbit_cluster.HOST, port=first.port, virtual_host=rabbit_cluster.VHOST,
                                       credentials=pika.PlainCredentials(rabbit_cluster.USER, rabbit_cluster.PASSWORD))
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        channel.queue_declare("metrics.probe", durable=True)
        for n in range(3):
            channel.basic_publish("", "metrics.probe", f"m{n}".encode())

    def depth():
        url = f"http://{rabbit_cluster.HOST}:{first.prometheus_port}/metrics/per-object"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "rabbitmq_queue_messages_ready" and s.labels.get("queue") == "metrics.probe":
                    return s.value if s.value == 3 else None
        return None

    # the plugin's counters refresh every few seconds
    assert wait_for(depth, timeout=30, what="queue depth 3 on /metrics/per-object", every=1) == 3
