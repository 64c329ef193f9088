"""Broker: RabbitMQ through pika, with publisher confirms and durable, persistent messages.

The rest of the platform speaks in plain values: a `Message` to publish, a `Received` one to
handle and acknowledge by its tag. pika's types stay inside `altcraft.stores`: beside this
adapter, amqp_publish.py (a confirm window with many messages in flight, for the tracking
publisher) and amqp_consume.py (a batch consumer of several queues, for procactions).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from altcraft.config import MainConfig


class PublishError(RuntimeError):
    """The broker did not take responsibility for a message (nack or unroutable)."""


class QueueTypeMismatch(RuntimeError):
    """A queue exists as the other type than main.json's RABBITMQ_QUEUE_TYPE asks for: the
    broker cannot convert it, and the platform never mixes types silently."""

    def __init__(self, queue: str, current: str, wanted: str):
        self.queue, self.current, self.wanted = queue, current, wanted
        super().__init__(
            f"queue {queue!r} exists as a {current} queue, RABBITMQ_QUEUE_TYPE wants {wanted}: "
            f"stop its producers, let its consumers drain it (or move its messages), delete it "
            f"(rabbitmqctl delete_queue {queue} -p <vhost>) and run `aktool migrate` again")


class FeatureFlagDisabled(RuntimeError):
    """The broker cannot make a queue of the wanted type until a feature flag is enabled
    (it closes the whole connection with 541 INTERNAL_ERROR, which names neither way out)."""

    def __init__(self, queue: str, wanted: str, broker_said: str):
        super().__init__(
            f"queue {queue!r}: RabbitMQ refuses {wanted} queues until their feature flag is enabled "
            f"(it said: {broker_said}); enable every flag the cluster supports with "
            f"`rabbitmqctl enable_feature_flag all` (the rabbitmq role does this) and run "
            f"`aktool migrate` again")


class UnsupportedQueueArguments(ValueError):
    """Arguments a queue of the configured type cannot have (quorum queues lack some)."""


# What quorum queues of RabbitMQ 3.10 refuse or ignore (their documented feature matrix).
_NOT_FOR_QUORUM = {
    "x-max-priority": "priorities",
    "x-queue-mode": "lazy mode (quorum queues keep their own log)",
    "x-queue-master-locator": "classic mirroring's master locator (use x-queue-leader-locator)",
    "x-queue-version": "classic queue storage versions",
}
_NOT_FOR_QUORUM_VALUES = {("x-overflow", "reject-publish-dlx"): "x-overflow reject-publish-dlx"}
# RabbitMQ 3.10's refusal of a declare with another type, in its three wordings:
#   received the value 'quorum' of type 'longstr' but current is none    (a classic queue)
#   received 'classic' but current is 'quorum'
#   received none but current is the value 'quorum' of type 'longstr'
_QUEUE_TYPE_DIFFERS = re.compile(r"inequivalent arg 'x-queue-type'.* but current is "
                                 r"(?:none|'(\w+)'|the value '(\w+)')")


def queue_arguments(queue_type: str, name: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The declare arguments of a platform queue: its own plus `x-queue-type` (RabbitMQ 3.10
    takes the type only at declaration, never from a policy). Every queue the platform
    declares goes through here. Raises UnsupportedQueueArguments naming what a quorum
    queue cannot have."""
    arguments = dict(arguments or {})
    if queue_type == "quorum":
        problems = [why for key, why in _NOT_FOR_QUORUM.items() if key in arguments]
        problems += [why for (key, value), why in _NOT_FOR_QUORUM_VALUES.items() if arguments.get(key) == value]
        if problems:
            raise UnsupportedQueueArguments(f"queue {name!r} cannot be a quorum queue: it uses "
                                            + ", ".join(problems))
    arguments["x-queue-type"] = queue_type
    return arguments


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


def parameters(config: MainConfig, timeout: float = 5.0, app: str = "altcraft") -> list[pika.ConnectionParameters]:
    """One entry per broker node (MainConfig.broker_nodes), in order: pika's BlockingConnection
    tries each in turn, so a connection made again after a node died lands on a live one."""
    return [pika.ConnectionParameters(
        host=host,
        port=port,
        virtual_host=config.RABBITMQ_VHOST,
        credentials=pika.PlainCredentials(config.RABBITMQ_USER, config.RABBITMQ_PASS),
        socket_timeout=timeout,
        blocked_connection_timeout=max(timeout, 30.0),
        connection_attempts=1,
        heartbeat=60,
        client_properties={"connection_name": app},
    ) for host, port in config.broker_nodes]


class Broker:
    def __init__(self, config: MainConfig, timeout: float = 5.0, app: str = "altcraft"):
        self._params = parameters(config, timeout, app)
        self.queue_type = config.RABBITMQ_QUEUE_TYPE
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

    def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        try:
            if channel is not None and channel.is_open:
                channel.close()
        except (pika.exceptions.AMQPError, OSError):
            pass

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
            if isinstance(exc, pika.exceptions.NackError):
                # RabbitMQ 3.10 goes on nacking a channel that quorum queues nacked during a
                # leader election (a node died); the next publish takes a new channel
                self._drop_channel()
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

    def declare_durable_queue(self, name: str, arguments: Mapping[str, Any] | None = None) -> None:
        """Declares a platform queue as RABBITMQ_QUEUE_TYPE says (a no-op when it exists as
        such); raises QueueTypeMismatch when it exists as the other type."""
        wanted = queue_arguments(self.queue_type, name, arguments)
        try:
            self.channel.queue_declare(name, durable=True, arguments=wanted)
        except ChannelClosedByBroker as exc:
            found = _QUEUE_TYPE_DIFFERS.search(str(exc.reply_text))
            if exc.reply_code == 406 and found:
                current = found.group(1) or found.group(2) or "classic"  # none: made before types
                raise QueueTypeMismatch(name, current, self.queue_type) from None
            raise
        except ConnectionClosedByBroker as exc:
            if "feature flag is disabled" in str(exc.reply_text):
                raise FeatureFlagDisabled(name, self.queue_type, str(exc.reply_text)) from None
            raise

    def queue_depth(self, name: str) -> int:
        """Messages ready in a queue that exists (a passive declare)."""
        return self.channel.queue_declare(name, passive=True).method.message_count

    def depth(self, name: str) -> tuple[int, int] | None:
        """(messages ready, consumers) of a queue, or None when it does not exist; on a
        channel of its own, since a miss closes the channel."""
        channel = self.connection.channel()
        try:
            method = channel.queue_declare(name, passive=True).method
        except ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
        channel.close()
        return method.message_count, method.consumer_count

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
        self.declare_durable_queue(queue.name, queue.arguments)
        self.bind_queue(queue)

    def bind_queue(self, queue: Queue) -> None:
        for exchange, key in queue.bindings:
            self.channel.queue_bind(queue.name, exchange, routing_key=key)

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        self._connection = self._channel = self._tx_channel = None
