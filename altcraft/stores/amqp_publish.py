"""A publishing channel with many messages in flight, for producers that cannot wait for
one confirm at a time (the tracking publisher: services/trk/publisher.py).

pika's BlockingChannel waits for each confirm in turn (about 2,000 messages/s here). Here
the async channel under the blocking adapter is put into confirm mode directly: a batch is
marshalled by `marshal_publish` and written in one go, and the broker's acks and nacks
(single or `multiple`) and returns are matched to delivery tags as they arrive. The caller
deals in plain `Publication` values (routing key, body, message id; `ok` once finished);
pika stays inside this module.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Generic, TypeVar

import pika
import pika.exceptions
import pika.spec

Parameters = Sequence[pika.ConnectionParameters]  # what stores.broker.parameters makes: one per node


class ConfirmTimeout(pika.exceptions.AMQPError):
    """The broker did not confirm a message in time (the caller decides how long)."""


@dataclass(eq=False)
class Publication:
    """One persistent JSON message for the window's exchange, published `mandatory`.
    `ok` is set when the window hands it back: confirmed and routed to a queue."""
    routing_key: str
    body: bytes
    message_id: str
    ok: bool = False
    returned: bool = field(default=False, repr=False)
    sent_at: float = field(default=0.0, repr=False)


P = TypeVar("P", bound=Publication)  # the caller's publications come back as they went out


class ConfirmWindow(Generic[P]):
    """One connection and channel in confirm mode with many messages in flight: `send`
    writes a batch, `poll` reads the confirms and returns the publications they finished."""

    def __init__(self, params: Parameters, exchange: str):
        self.exchange = exchange
        self.connection = pika.BlockingConnection(params)
        channel = self.connection.channel()
        self._impl = channel._impl  # the async channel under the blocking wrapper
        self._connection_impl = self.connection._impl
        self._max_body = self._connection_impl._body_max_length
        self._outstanding: OrderedDict[int, P] = OrderedDict()
        self._by_id: dict[str, P] = {}
        self._finished: list[P] = []
        self._tag = 0
        # Nacks seen. On RabbitMQ 3.10 a channel that quorum queues nacked while they elected a
        # new leader (a node died) goes on being nacked, where a new channel is not: its
        # owner opens a new window when this is non-zero.
        self.nacked = 0
        selected: list[bool] = []
        self._impl.add_on_return_callback(self._on_return)
        self._impl.confirm_delivery(ack_nack_callback=self._on_confirm,
                                    callback=lambda _frame: selected.append(True))
        deadline = time.monotonic() + 10
        while not selected:
            if time.monotonic() > deadline:
                raise pika.exceptions.AMQPError("no Confirm.SelectOk from the broker")
            self.connection.process_data_events(time_limit=0.05)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def oldest_age(self) -> float:
        if not self._outstanding:
            return 0.0
        return time.monotonic() - next(iter(self._outstanding.values())).sent_at

    def _on_return(self, _channel, _method, properties, _body) -> None:
        # Basic.Return comes before the message's ack: the message reached no queue
        item = self._by_id.get(properties.message_id or "")
        if item is not None:
            item.returned = True

    def _on_confirm(self, frame) -> None:
        method = frame.method
        ack = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            tags = []
            for tag in self._outstanding:
                if tag > method.delivery_tag:
                    break
                tags.append(tag)
        else:
            tags = [method.delivery_tag]
        if not ack:
            self.nacked += len(tags)
        for tag in tags:
            item = self._outstanding.pop(tag, None)
            if item is None:
                continue
            self._by_id.pop(item.message_id, None)
            item.ok = ack and not item.returned
            self._finished.append(item)

    def send(self, items: list[P]) -> None:
        now = time.monotonic()
        frames = []
        for item in items:
            item.ok = item.returned = False
            item.sent_at = now
            self._tag += 1
            self._outstanding[self._tag] = item
            self._by_id[item.message_id] = item
            frames.append(marshal_publish(self._impl.channel_number, self.exchange, item.routing_key,
                                          item.body, item.message_id, self._max_body))
        # one write for the whole batch, where pika would make three per message
        data = b"".join(frames)
        self._connection_impl.bytes_sent += len(data)
        self._connection_impl.frames_sent += 3 * len(items)
        self._connection_impl._adapter_emit_data(data)

    def poll(self, timeout: float) -> list[P]:
        """Sends what is written, reads confirms (waiting up to `timeout`); the finished items."""
        self.connection.process_data_events(time_limit=timeout)
        finished, self._finished = self._finished, []
        return finished

    def take_outstanding(self) -> list[P]:
        items = list(self._outstanding.values())
        self._outstanding.clear()
        self._by_id.clear()
        return items

    def close(self) -> None:
        try:
            if self.connection.is_open:
                self.connection.close()
        except Exception:  # closing a broken connection: nothing left to do
            pass


_FRAME_END = b"\xce"
_PUBLISH = struct.Struct(">BHIHHH")  # frame type, channel, size | class 60, method 40, reserved
_HEADER = struct.Struct(">BHIHHQH")  # frame type, channel, size | class 60, weight, body size, flags
_BODY = struct.Struct(">BHI")
# BasicProperties present: content_type (bit 15), delivery_mode (bit 12), message_id (bit 7)
_FLAGS = 0x8000 | 0x1000 | 0x0080
_CONTENT_TYPE = b"\x10application/json"
_PERSISTENT = b"\x02"


def marshal_publish(channel: int, exchange: str, routing_key: str, body: bytes, message_id: str,
                    max_body: int) -> bytes:
    """The AMQP 0-9-1 frames of one basic.publish (mandatory, persistent, JSON, message id):
    what pika's Channel.basic_publish writes, byte for byte (a unit test compares them),
    built with struct in a few microseconds instead of pika's generic marshalling."""
    ex, rk, mid = exchange.encode(), routing_key.encode(), message_id.encode()
    args = bytes((len(ex),)) + ex + bytes((len(rk),)) + rk + b"\x01"  # mandatory bit
    out = [_PUBLISH.pack(1, channel, 6 + len(args), 60, 40, 0), args, _FRAME_END]
    props = _CONTENT_TYPE + _PERSISTENT + bytes((len(mid),)) + mid
    out += [_HEADER.pack(2, channel, 14 + len(props), 60, 0, len(body), _FLAGS), props, _FRAME_END]
    for start in range(0, len(body), max_body):
        chunk = body[start:start + max_body]
        out += [_BODY.pack(3, channel, len(chunk)), chunk, _FRAME_END]
    return b"".join(out)
