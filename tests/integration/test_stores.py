"""Each store adapter against its real server."""

import time
import uuid
from datetime import datetime

import pika
import pytest

from altcraft.schema import migrate as migration
from altcraft.stores import amqp_consume, analytics, broker, documents, kv

pytestmark = pytest.mark.integration


def test_broker_publishes_with_confirms_into_durable_queues(config):
    migration.run(config)
    queue = f"test.{uuid.uuid4().hex[:8]}"
    with broker.Broker(config) as b:
        b.declare_queue(broker.Queue(queue, (("altcraft.events", f"test.{queue}"),)))
        b.publish(broker.Message("altcraft.events", f"test.{queue}", b'{"n": 1}', message_id="m-1"))
        method, properties, body = b.channel.basic_get(queue, auto_ack=True)
        assert body == b'{"n": 1}' and properties.message_id == "m-1"
        assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
        declared = b.channel.queue_declare(queue, passive=True)
        assert declared.method.message_count == 0
        b.channel.queue_delete(queue)


def test_batch_consumer_gives_plain_values_and_acks_by_tag(config):
    """stores.amqp_consume: deliveries of several queues as Received values with their routing
    key; an ack removes a message, a reject dead-letters it, the unacknowledged come back."""
    migration.run(config)
    tag = uuid.uuid4().hex[:8]
    queues = [f"test.{tag}.a", f"test.{tag}.b"]
    dead = f"test.{tag}.dead"
    with broker.Broker(config) as b:
        b.declare_queue(broker.Queue(dead))
        for name in queues:
            b.declare_queue(broker.Queue(name, (("altcraft.events", f"{name}.#"),),
                                         {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}))
        for n, name in enumerate(queues * 2):
            b.publish(broker.Message("altcraft.events", f"{name}.k{n}", b'{"n": %d}' % n, message_id=f"m-{n}"))
        got: list[broker.Received] = []
        consumer = amqp_consume.BatchConsumer(config, queues, got.append, prefetch=10, app="altcraft-test")
        try:
            deadline = time.monotonic() + 10
            while len(got) < 4 and time.monotonic() < deadline:
                consumer.poll(0.05)
            by_id = {m.message_id: m for m in got}
            assert sorted(by_id) == ["m-0", "m-1", "m-2", "m-3"]
            assert (by_id["m-2"].queue, by_id["m-2"].routing_key, by_id["m-2"].body) == (
                queues[0], f"{queues[0]}.k2", b'{"n": 2}')
            assert by_id["m-1"].routing_key == f"{queues[1]}.k1" and by_id["m-1"].headers == {}
            consumer.ack(by_id["m-0"].tag)
            consumer.reject(by_id["m-1"].tag)
            consumer.flush()
        finally:
            consumer.close()  # m-2 and m-3 were not acknowledged: back in their queues
        dead_letters: list[broker.Received] = []
        b.consume(dead, dead_letters.append)
        deadline = time.monotonic() + 10
        while not dead_letters and time.monotonic() < deadline:
            b.poll(0.05)
        assert [(m.message_id, m.routing_key) for m in dead_letters] == [("m-1", dead)]
        while [b.queue_depth(name) for name in queues] != [1, 1] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [b.queue_depth(name) for name in queues] == [1, 1]
        for name in (*queues, dead):
            b.channel.queue_delete(name)


def test_unroutable_message_is_an_error_not_a_silent_loss(config):
    # altcraft.events routes every key since prochook's queue binds `#`; the default exchange
    # to a queue that does not exist is unroutable
    migration.run(config)
    with broker.Broker(config) as b:
        with pytest.raises(broker.PublishError, match="UnroutableError"):
            b.publish(broker.Message("", f"no.such.queue.{uuid.uuid4().hex}", b"{}"))


def test_clickhouse_insert_and_read_back(config):
    migration.run(config)
    store = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
    try:
        event_id = uuid.uuid4()
        rows = [(event_id, datetime(2026, 11, 22, 12, 0, 0), 1, "open", 42)] * 2  # a redelivery
        store.insert("events", ("event_id", "event_time", "account_id", "kind", "campaign_id"), rows)
        count = store.execute(f"SELECT uniqExact(event_id), count() FROM {store.table('events')}")
        assert count == [(1, 2)]
        store.execute(f"OPTIMIZE TABLE {store.table('events')} FINAL")
        assert store.execute(f"SELECT count() FROM {store.table('events')}") == [(1,)]
        assert store.server_version() >= (18, 16)
    finally:
        store.close()


def test_kv_store_round_trip(config):
    store = kv.from_cluster("camp_duplicatesdb", config.CAMP_DUPLICATESDB)
    key = f"test:{uuid.uuid4().hex}"
    try:
        store.ping()
        assert store.client.set(key, "1", nx=True) is True
        assert store.client.set(key, "1", nx=True) is None  # the de-duplication primitive
    finally:
        store.client.delete(key)
        store.close()


def test_account_databases_are_separate(config):
    client = documents.connect(config, "account")
    try:
        one = documents.account_db(client, config, 1)
        two = documents.account_db(client, config, 2)
        one.profiles.insert_one({"email": "a@example.com"})
        assert two.profiles.count_documents({}) == 0
        assert one.profiles.count_documents({"email": "a@example.com"}) == 1
        with pytest.raises(ValueError, match="positive integer"):
            documents.account_db(client, config, "1; drop")  # type: ignore[arg-type]
        client.drop_database(one.name)
        client.drop_database(two.name)
    finally:
        client.close()
