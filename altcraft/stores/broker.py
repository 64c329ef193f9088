"""Broker: RabbitMQ through pika, with publisher confirms and durable, persistent messages.

The rest of the platform speaks in plain values: a `Message` to publish, a `Received` one to
handle and acknowledge by its tag. pika's types stay inside `altcraft.stores`: beside this
adapter, amqp_publish.py (a confirm window with many messages in flight, for the tracking
publisher) and amqp_consume.py (a batch consumer of several queues, for procactions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from altcraft.config import MainConfig


class PublishError(RuntimeError):
    """The broker did not take responsibility for a message (nack or unroutable)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message to publish: persistent, with the producer's id (consumers de-duplicate by it)."""
    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None = None
    headers: Mapping[str, Any] | None = None
    content_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class Received:
    """One message taken from a queue; `tag` acknowledges it (Broker.ack)."""
    queue: str
    tag: int
    body: bytes
    message_id: str | None
    headers: Mapping[str, Any]
    routing_key: str = ""  # the key it was published with (event consumers check it)


def _properties(message: Message) -> pika.BasicProperties:
    return pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent, content_type=message.content_type,
        message_id=message.message_id, headers=dict(message.headers) if message.headers else None)


@dataclass(frozen=True)
class Exchange:
    name: str
    kind: str = "topic"
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Queue:
    name: str
    bindings: tuple[tuple[str, str], ...] = ()  # (exchange, routing key)
    arguments: dict[str, Any] = field(default_factory=dict)


def parameters(config: MainConfig, timeout: float = 5.0, app: str = "altcraft") -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        host=config.RABBITMQ_HOST,
        port=config.RABBITMQ_PORT,
        virtual_host=config.RABBITMQ_VHOST,
        credentials=pika.PlainCredentials(config.RABBITMQ_USER, config.RABBITMQ_PASS),
        socket_timeout=timeout,
        blocked_connection_timeout=max(timeout, 30.0),
        connection_attempts=1,
        heartbeat=60,
        client_properties={"connection_name": app},
    )


class Broker:
    def __init__(self, config: MainConfig, timeout: float = 5.0, app: str = "altcraft"):
        self._params = parameters(config, timeout, app)
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._tx_channel: BlockingChannel | None = None

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> pika.BlockingConnection:
        if self._connection is None or self._connection.is_closed:
            self._connection = pika.BlockingConnection(self._params)
            self._channel = self._tx_channel = None
        return self._connection

    @property
    def channel(self) -> BlockingChannel:
        """A channel in confirm mode: basic_publish returns only once the broker has the message."""
        if self._channel is None or self._channel.is_closed:
            self._channel = self.connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def server_version(self) -> str:
        props = self.connection._impl.server_properties  # pika exposes them only here
        version = props.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)

    def publish(self, message: Message) -> None:
        """Returns once the broker holds the message; raises PublishError if it refused it
        or nothing was bound to take it (mandatory routing)."""
        try:
            self.channel.basic_publish(message.exchange, message.routing_key, message.body,
                                       _properties(message), mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            raise PublishError(f"{message.exchange}/{message.routing_key}: {type(exc).__name__}") from exc

    def publish_transaction(self, messages: Iterable[Message]) -> None:
        """Publishes a batch atomically: nothing of it is routed until the commit, and the
        commit returns once the broker holds every message. One round trip per batch instead
        of one confirm per message."""
        if self._tx_channel is None or self._tx_channel.is_closed:
            self._tx_channel = self.connection.channel()
            self._tx_channel.tx_select()
        for message in messages:
            self._tx_channel.basic_publish(message.exchange, message.routing_key, message.body,
                                           _properties(message))
        self._tx_channel.tx_commit()

    def consume(self, queue: str, on_message: Callable[[Received], None]) -> None:
        """Delivers the queue's messages to on_message from `poll`, in this thread; each stays
        unacknowledged until `ack` (the prefetch set by `prefetch` bounds how many)."""
        def deliver(_channel, method, properties, body: bytes) -> None:
            on_message(Received(queue, method.delivery_tag, body, properties.message_id,
                                properties.headers or {}, method.routing_key))
        self.channel.basic_consume(queue, deliver)

    def prefetch(self, count: int) -> None:
        self.channel.basic_qos(prefetch_count=count)

    def ack(self, tag: int, multiple: bool = False) -> None:
        self.channel.basic_ack(tag, multiple=multiple)

    def reject(self, tag: int) -> None:
        """Refuses a message for good: its queue's dead-letter exchange keeps it."""
        self.channel.basic_reject(tag, requeue=False)

    def poll(self, seconds: float) -> None:
        """Handles the connection's traffic (deliveries, heartbeats) for up to `seconds`."""
        self.connection.process_data_events(time_limit=seconds)

    def declare_durable_queue(self, name: str, arguments: dict[str, Any] | None = None) -> None:
        self.channel.queue_declare(name, durable=True, arguments=arguments)

    def queue_depth(self, name: str) -> int:
        """Messages ready in a queue that exists (a passive declare)."""
        return self.channel.queue_declare(name, passive=True).method.message_count

    def exists(self, kind: str, name: str) -> bool:
        """Passive declare: True if the exchange or queue exists. A miss closes the channel."""
        channel = self.connection.channel()
        try:
            if kind == "exchange":
                channel.exchange_declare(name, passive=True)
            else:
                channel.queue_declare(name, passive=True)
        except ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return False
            raise
        channel.close()
        return True

    def declare_exchange(self, exchange: Exchange) -> None:
        self.channel.exchange_declare(exchange.name, exchange.kind, durable=True,
                                      arguments=exchange.arguments or None)

    def declare_queue(self, queue: Queue) -> None:
        self.channel.queue_declare(queue.name, durable=True, arguments=queue.arguments or None)
        self.bind_queue(queue)

    def bind_queue(self, queue: Queue) -> None:
        for exchange, key in queue.bindings:
            self.channel.queue_bind(queue.name, exchange, routing_key=key)

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        self._connection = self._channel = self._tx_channel = None
