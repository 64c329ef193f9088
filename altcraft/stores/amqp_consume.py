"""A consumer for batch workers (procactions): deliveries of several queues as plain
`Received` values, acknowledged or rejected by tag.

The channel under pika's blocking adapter is used directly: deliveries reach the callback
while frames are read, without the adapter's per-message event objects (which cost a third
of procactions' CPU). Like everything pika, it is driven from one thread: `poll`, `ack`,
`reject` and `flush` belong to the thread that made the consumer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from types import MappingProxyType

import pika
import pika.exceptions

from altcraft.config import MainConfig
from altcraft.stores import amqp_frames
from altcraft.stores.broker import Received, parameters

_NO_HEADERS = MappingProxyType({})  # shared by the deliveries without headers: no dict each


class BatchConsumer:
    """Consumes `queues` with a prefetch of `prefetch` unacknowledged messages per queue,
    handing each delivery to `on_message` from `poll`: as a `Received`, or with `plain` as
    on_message(delivery tag, routing key, body), for a consumer that needs no more (procactions:
    a frozen Received per message cost it more than a microsecond); such deliveries are
    read off the connection's input without pika's frame objects (amqp_frames)."""

    def __init__(self, config: MainConfig, queues: Iterable[str], on_message: Callable[..., None],
                 *, prefetch: int, timeout: float = 10.0, app: str = "altcraft", plain: bool = False):
        self.connection = pika.BlockingConnection(parameters(config, timeout=timeout, app=app))
        self.closed: BaseException | None = None
        self._on_message = on_message
        self._plain = plain
        try:
            opened: list[object] = []
            self.impl = self.connection._impl.channel(on_open_callback=opened.append)
            self.impl.add_on_close_callback(self._on_close)
            self._wait(lambda: opened, "channel open")
            ok: list[object] = []
            self.impl.basic_qos(prefetch_count=prefetch, callback=ok.append)
            self._wait(lambda: ok, "basic.qos")
            queues = list(queues)
            tags = [f"{app}-{uuid.uuid4().hex[:12]}-{queue}" for queue in queues]
            if plain:  # the deliveries are read off the connection's input (amqp_frames)
                amqp_frames.install(self.connection._impl, self.impl.channel_number, tags, on_message)
            for queue, tag in zip(queues, tags):
                ok = []
                self.impl.basic_consume(queue, self._deliverer(queue), consumer_tag=tag, callback=ok.append)
                self._wait(lambda: ok, f"basic.consume {queue}")
        except BaseException:
            self.close()
            raise

    def _deliverer(self, queue: str):
        on_message = self._on_message
        if self._plain:
            def deliver_plain(_channel, method, _properties, body: bytes) -> None:
                on_message(method.delivery_tag, method.routing_key, body)
            return deliver_plain

        def deliver(_channel, method, properties, body: bytes) -> None:
            on_message(Received(queue, method.delivery_tag, body, properties.message_id,
                                properties.headers or _NO_HEADERS, method.routing_key))
        return deliver

    def _on_close(self, _channel, reason) -> None:
        self.closed = reason if isinstance(reason, BaseException) else pika.exceptions.ChannelClosed(0, str(reason))

    def _wait(self, done, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            self.check()
            if time.monotonic() > deadline:
                raise pika.exceptions.AMQPError(f"no answer from the broker: {what}")
            # short slices: pika's wait runs until its time limit even when the answer came
            # (the callback is the channel's own), and procactions asks mid-burst (ready)
            self.connection.process_data_events(time_limit=0.002)

    def check(self) -> None:
        """Raises what closed the channel, if the broker closed it."""
        if self.closed is not None:
            raise self.closed

    def poll(self, seconds: float) -> None:
        """Reads deliveries (and heartbeats) for up to `seconds`; raises if the channel closed."""
        self.connection.process_data_events(time_limit=seconds)
        self.check()

    def ready(self, queue: str) -> int:
        """Messages ready in `queue` (a passive declare on this channel). Deliveries the
        broker sent before its answer reach `on_message` before this returns: the frames
        of one channel arrive in order."""
        ok: list[object] = []
        self.impl.queue_declare(queue, passive=True, callback=ok.append)
        self._wait(lambda: ok, f"queue.declare {queue}")
        return ok[0].method.message_count

    def ack(self, tag: int, multiple: bool = False) -> None:
        self.impl.basic_ack(delivery_tag=tag, multiple=multiple)

    def reject(self, tag: int) -> None:
        """Refused for good: not requeued, so the queue's dead-letter exchange gets it."""
        self.impl.basic_reject(delivery_tag=tag, requeue=False)

    def flush(self) -> None:
        """Sends the acks and rejects written so far."""
        self.poll(0)

    def close(self) -> None:
        """Unacknowledged deliveries go back to their queues."""
        try:
            # the blocking adapter's close() cannot close a channel it did not make (it fails
            # and leaves the connection open, holding the deliveries): close ours first
            impl = getattr(self, "impl", None)
            if impl is not None and impl.is_open:
                impl.close()
                deadline = time.monotonic() + 5
                while not impl.is_closed and time.monotonic() < deadline:
                    self.connection.process_data_events(time_limit=0.05)
            if self.connection.is_open:
                self.connection.close()
        except Exception:  # closing a broken connection: nothing left to do
            pass
