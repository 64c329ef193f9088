"""RabbitMQ of the harness as the tests and benches use it: a vhost of one's own (so queues
left by another run never leak in), queue depths, and the delivery events akmtad published."""

from __future__ import annotations

import json
import time
import uuid

import pika

from altcraft.stores import broker
from tests.lib.harness import servers


def add_vhost(harness: dict, prefix: str = "t-") -> str:
    """A new vhost on the harness's RabbitMQ, usable by the harness's user."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    user = harness["rabbitmq"]["user"]
    for args in (["add_vhost", name], ["set_permissions", "-p", name, user, ".*", ".*", ".*"]):
        servers("rabbitmqctl", "-q", *args, check=True)
    return name


def delete_vhost(name: str) -> None:
    servers("rabbitmqctl", "-q", "delete_vhost", name)


def depth(config, queue: str) -> int:
    """Messages ready in `queue` of the vhost `config` points at."""
    connection = pika.BlockingConnection(broker.parameters(config, app="altcraft-test"))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def delivery_events(config, minimum: int, timeout: float = 60) -> list[dict]:
    """Takes (and acks) delivery events off events.delivery until `minimum` or `timeout`."""
    params = pika.ConnectionParameters(config.RABBITMQ_HOST, config.RABBITMQ_PORT, config.RABBITMQ_VHOST,
                                       pika.PlainCredentials(config.RABBITMQ_USER, config.RABBITMQ_PASS))
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        while time.monotonic() < deadline and len(events) < minimum:
            method, _, body = channel.basic_get("events.delivery", auto_ack=True)
            if method is None:
                time.sleep(0.3)
                continue
            events.append(json.loads(body))
    return events
