"""The fail-safe scheme's broker on a real three-node RabbitMQ cluster (tests/lib/rabbit_cluster.py,
loopback only): the platform's topology declared as quorum queues by `aktool migrate`'s code,
events published by the tracking publisher while the node it is connected to is killed
(kill -9), every event consumed afterwards, the killed node back in the cluster; then the
node the idle publisher is on is killed too and an event sent afterwards still arrives.

Delivery is at least once: the publisher sends again what was unconfirmed when its connection
died, so an event may arrive twice. The platform de-duplicates downstream by event id
(events_raw is a ReplacingMergeTree keyed on event_id, reports count uniqExact(event_id)); the
copies are counted and printed here, never hidden.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from altcraft import config as main_config
from altcraft.schema import rabbitmq as topology
from altcraft.services.trk import publisher as trk_publisher
from altcraft.stores import amqp_consume, broker
from tests.lib.harness import SECRET
from tests.lib.rabbit_cluster import RabbitCluster
from tests.lib.wait import wait_for

pytestmark = pytest.mark.integration

EVENTS = 5_000
QUEUE = "events.actions"  # bound to action.# (and events.webhooks takes a copy of everything)


def _config(cluster: RabbitCluster, queue_type: str) -> main_config.MainConfig:
    data = {**cluster.main_json(), "RABBITMQ_QUEUE_TYPE": queue_type,
            "PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET}
    config, report = main_config.validate(data)
    assert config is not None, report.errors
    return config


@pytest.fixture(scope="module")
def cluster():
    with RabbitCluster() as started:
        yield started


def _counter(outcome: str) -> float:
    return trk_publisher.EVENTS.labels(outcome)._value.get()


def test_quorum_queues_keep_every_event_when_the_publishers_node_is_killed(cluster, tmp_path):
    config = _config(cluster, "quorum")
    first = cluster.nodes[0]
    assert config.broker_nodes[0] == ("127.0.0.1", first.port)  # the publisher's first choice

    with broker.Broker(config, app="altcraft-test-migrate") as b:
        created = topology.migrate(b)
        assert {target for target, _ in created} >= {f"queue {q.name}" for q in topology.QUEUES}
        assert topology.migrate(b) == []  # a second run changes nothing
    types = dict(line.split("\t") for line in cluster.ctl(first, "-q", "list_queues", "-p", "altcraft",
                                                           "--no-table-headers", "name", "type").splitlines())
    assert types == {q.name: "quorum" for q in topology.QUEUES}, types

    retried, spooled, lost = _counter("retried"), _counter("spooled"), _counter("lost")
    confirmed = _counter("confirmed")
    publisher = trk_publisher.EventPublisher(
        lambda: broker.parameters(config, app="altcraft-test-publisher"), topology.EVENTS_EXCHANGE,
        tmp_path / "spool", batch=100, window=500, flush_timeout=60)
    ids = [uuid.uuid4().hex for _ in range(EVENTS)]
    started = time.monotonic()
    try:
        for event_id in ids:
            publisher.submit("action.open", b'{"event_id": "%s", "type": "open"}' % event_id.encode(), event_id)
        # the publisher is on the first node (the first it tries) with work in flight: kill that node
        wait_for(lambda: _counter("confirmed") - confirmed >= EVENTS // 5, timeout=30,
                 what="a fifth of the events confirmed", every=0.01)
        assert _counter("confirmed") - confirmed < EVENTS, "every event was confirmed before the kill"
        cluster.kill(0)
        killed_at = time.monotonic() - started

        def settled() -> bool:
            # nothing buffered, in flight or spooled (messages nacked while a queue elected its
            # new leader are spooled and replayed by the publisher: its own way of losing none)
            spool = tmp_path / "spool"
            return (_counter("confirmed") - confirmed >= EVENTS and trk_publisher.BUFFERED._value.get() == 0
                    and not (spool.is_dir() and any(spool.iterdir())))
        try:
            wait_for(settled, timeout=45, what="every event confirmed, none left in the spool", every=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{cluster.log_tails()}") from None
        took = time.monotonic() - started
    except BaseException:
        publisher.close(timeout=5)
        raise

    again, respooled = _counter("retried") - retried, _counter("spooled") - spooled
    assert again > 0, "the kill did not cut the publisher's connection (it was not on the killed node)"
    assert _counter("lost") - lost == 0

    rejoin = threading.Thread(target=cluster.restart, args=(0,))
    rejoin.start()
    got: list[str] = []
    consumer = amqp_consume.BatchConsumer(config, (QUEUE,), lambda r: got.append(r.message_id),
                                          prefetch=2000, app="altcraft-test-consumer")
    try:
        def drained() -> bool:
            consumer.poll(0.1)
            consumer.flush()
            if got:
                consumer.ack(0, multiple=True)
            return len(set(got)) >= EVENTS
        wait_for(drained, timeout=60, what=f"{EVENTS} distinct events consumed", every=0)
        consumer.poll(0.5)  # copies still on their way
        consumer.ack(0, multiple=True)
        consumer.flush()
    finally:
        consumer.close()
    missing = set(ids) - set(got)
    duplicates = len(got) - len(set(got))
    print(f"\n{EVENTS} events, node {first.name} killed at {killed_at:.1f}s, all confirmed after "
          f"{took:.1f}s; {int(again)} sent again, {int(respooled)} nacked and replayed from the spool; {len(set(got))} distinct consumed, {duplicates} "
          "duplicate(s) (de-duplicated downstream by event id)")
    assert not missing, f"{len(missing)} event(s) lost"
    assert set(got) == set(ids)

    rejoin.join(90)
    assert not rejoin.is_alive()
    wait_for(lambda: cluster.running() == sorted(n.name for n in cluster.nodes), timeout=60,
             what="the killed node running in the cluster again", every=0.5)

    # The publisher, idle after its last event, is on one node: kill that one too (the others
    # hold two of three members of every quorum); the next event must go through another.
    try:
        assert publisher.publish_and_wait("action.open", b'{"type": "open"}', uuid.uuid4().hex, timeout=30)
        idle_on = cluster.connected_node()
        assert idle_on is not None, "the publisher holds no connection to the cluster"
        cluster.kill(idle_on)
        late = uuid.uuid4().hex
        publisher.submit("action.open", b'{"type": "open"}', late)  # confirmed, or nacked and replayed
        seen: list[str] = []
        consumer = amqp_consume.BatchConsumer(config, (QUEUE,), lambda r: seen.append(r.message_id),
                                              prefetch=100, app="altcraft-test-consumer")
        try:
            def arrived() -> bool:
                consumer.poll(0.1)
                return late in seen
            wait_for(arrived, timeout=40, every=0,
                     what=f"an event sent after the idle publisher's node ({cluster.nodes[idle_on].name}) died")
        finally:
            consumer.close()
    finally:
        publisher.close(timeout=5)


def test_migrate_refuses_to_mix_queue_types(cluster):
    """Queues that exist as quorum, wanted as classic: the migration names each, its type, the
    wanted one and the operator's way out, and declares nothing of the other type."""
    with broker.Broker(_config(cluster, "quorum"), app="altcraft-test-migrate") as b:
        topology.migrate(b)  # the cluster's topology, as the failsafe scheme has it
    config = _config(cluster, "classic")
    with broker.Broker(config, app="altcraft-test-migrate") as b:
        with pytest.raises(topology.QueueTypesDiffer) as caught:
            topology.migrate(b, dry_run=True)
    message = str(caught.value)
    for queue in topology.QUEUES:
        assert f"queue {queue.name!r} exists as a quorum queue, RABBITMQ_QUEUE_TYPE wants classic" in message
    assert "delete it" in message and "aktool migrate" in message
