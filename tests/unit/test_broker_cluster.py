"""The broker's fail-safe settings without a broker: RABBITMQ_NODES and RABBITMQ_QUEUE_TYPE in
main.json, the connection parameters (every node, in order) and the one declare helper that
gives a queue its type. The cluster itself: tests/integration/test_rabbitmq_cluster.py."""

import pytest

from altcraft import config as cfg
from altcraft.schema import rabbitmq as topology
from altcraft.stores import broker

SECRET = "x" * 32


def validate(**extra):
    return cfg.validate({"PRIVATE_KEY": SECRET, "WEBAPI_PRIVATE_KEY": SECRET, "TRACKING_CRYPT_KEY": SECRET, **extra})


def test_one_node_and_classic_queues_by_default():
    config, report = validate(RABBITMQ_HOST="mq", RABBITMQ_PORT=5673)
    assert report.ok and not report.warnings
    assert config.RABBITMQ_QUEUE_TYPE == "classic"
    assert [(p.host, p.port) for p in broker.parameters(config)] == [("mq", 5673)]


def test_every_cluster_node_is_tried_in_order():
    nodes = [{"HOST": "db1", "PORT": 5672}, {"HOST": "db2"}, {"HOST": "db3", "PORT": 5673}]
    config, report = validate(RABBITMQ_NODES=nodes, RABBITMQ_QUEUE_TYPE="quorum")
    assert report.ok and not report.warnings
    params = broker.parameters(config, app="x")
    assert [(p.host, p.port) for p in params] == [("db1", 5672), ("db2", 5672), ("db3", 5673)]
    assert all(p.virtual_host == "altcraft" and p.connection_attempts == 1 for p in params)


def test_bad_broker_settings_are_named():
    _, report = validate(RABBITMQ_QUEUE_TYPE="mirrored", RABBITMQ_NODES=[{"HOST": "db1", "PORT": 99999}])
    keys = {issue.key for issue in report.errors}
    assert keys == {"RABBITMQ_QUEUE_TYPE", "RABBITMQ_NODES[0].PORT"}
    _, report = validate(RABBITMQ_NODES=[{"HOST": "db1"}, {"HOST": "db1"}, {"HOST": "db2"}])
    assert [(i.key, i.message) for i in report.errors] == [("RABBITMQ_NODES", "a node is listed twice")]


def test_quorum_on_fewer_than_three_nodes_is_a_warning():
    config, report = validate(RABBITMQ_QUEUE_TYPE="quorum")
    assert config is not None
    assert [i.key for i in report.warnings] == ["RABBITMQ_QUEUE_TYPE"]
    assert "3 or more nodes" in report.warnings[0].message


def test_the_declare_helper_adds_the_type_and_refuses_what_quorum_queues_lack():
    assert broker.queue_arguments("classic", "q", {"x-max-priority": 5}) == {
        "x-max-priority": 5, "x-queue-type": "classic"}
    assert broker.queue_arguments("quorum", "q", {"x-dead-letter-exchange": "d"}) == {
        "x-dead-letter-exchange": "d", "x-queue-type": "quorum"}
    with pytest.raises(broker.UnsupportedQueueArguments, match="'akmta_prior_1' cannot be a quorum queue: it uses priorities"):
        broker.queue_arguments("quorum", "akmta_prior_1", {"x-max-priority": 10})
    with pytest.raises(broker.UnsupportedQueueArguments, match="reject-publish-dlx"):
        broker.queue_arguments("quorum", "q", {"x-overflow": "reject-publish-dlx"})


def test_every_platform_queue_can_be_a_quorum_queue():
    for queue in topology.QUEUES:
        assert broker.queue_arguments("quorum", queue.name, queue.arguments)["x-queue-type"] == "quorum"


@pytest.mark.parametrize("reply, current", [
    ("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost 'v': "
     "received the value 'quorum' of type 'longstr' but current is none", None),
    ("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost 'v': "
     "received 'classic' but current is 'quorum'", "quorum"),
    ("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost 'v': "
     "received none but current is the value 'quorum' of type 'longstr'", "quorum"),
])
def test_rabbitmqs_three_wordings_of_a_type_clash_are_read(reply, current):
    """The wordings RabbitMQ 3.10 answered in this repository's run (a declare of the other type)."""
    found = broker._QUEUE_TYPE_DIFFERS.search(reply)
    assert found and (found.group(1) or found.group(2)) == current


def test_a_mismatch_names_the_queue_both_types_and_the_way_out():
    message = str(broker.QueueTypeMismatch("events.actions", "classic", "quorum"))
    assert message.startswith("queue 'events.actions' exists as a classic queue, RABBITMQ_QUEUE_TYPE wants quorum")
    assert "drain it" in message and "delete_queue events.actions" in message and "aktool migrate" in message


def test_a_disabled_feature_flag_names_the_queue_and_the_way_out(monkeypatch):
    """RabbitMQ closes the connection (541) when quorum queues' flag is off; the platform says
    which queue, what the broker said and how to enable it (seen on a fresh CI machine)."""
    from pika.exceptions import ConnectionClosedByBroker

    said = ("INTERNAL_ERROR - Cannot declare a queue 'queue 'events.actions' in vhost 'altcraft'' of type "
            "'rabbit_quorum_queue' on node 'rabbit-a@localhost': the corresponding feature flag is disabled")

    class Channel:
        is_closed = False

        def queue_declare(self, *args, **kwargs):
            raise ConnectionClosedByBroker(541, said)

    b = broker.Broker(validate(RABBITMQ_QUEUE_TYPE="quorum", RABBITMQ_NODES=[
        {"HOST": "10.0.0.1", "PORT": 5672}, {"HOST": "10.0.0.2", "PORT": 5672}, {"HOST": "10.0.0.3", "PORT": 5672}])[0])
    b._channel = Channel()
    with pytest.raises(broker.FeatureFlagDisabled) as caught:
        b.declare_durable_queue("events.actions")
    message = str(caught.value)
    assert message.startswith("queue 'events.actions': RabbitMQ refuses quorum queues until their feature flag")
    assert said in message and "rabbitmqctl enable_feature_flag all" in message and "aktool migrate" in message
