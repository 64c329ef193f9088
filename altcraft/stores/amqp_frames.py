"""Deliveries read straight off a pika connection's input, for a consumer that needs only
(delivery tag, routing key, body) of each message (procactions).

pika turns each delivery's three frames (Basic.Deliver, content header, body) into method,
properties and frame objects and routes each through its callback tables and the channel's
content assembler: most of procactions' CPU per event went there (issue #18). `install`
replaces the connection's handler of incoming bytes with one that reads a complete
delivery to one of the given consumer tags on the given channel with a few struct reads
and hands it to `on_message`; every other frame (heartbeats, RPC answers, a channel
close, deliveries to other consumers) still goes to pika's own decoder, one frame at a
time and in order, exactly as pika would have read it. A delivery whose frames have not
all arrived waits for more bytes, as pika's decoder does for a partial frame.

Written against pika 1.4 (pinned): Connection._on_data_available, _frame_buffer,
bytes_received (the heartbeat checker reads it) and _process_frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pika import frame as pika_frame
from pika.exceptions import InvalidFrameError

_HEADER = struct.Struct(">BHL")  # frame type, channel, payload size
_BODY_SIZE = struct.Struct(">Q")
_DELIVER = struct.pack(">HH", 60, 60)  # Basic.Deliver: class 60, method 60
_METHOD, _CONTENT_HEADER, _BODY, _FRAME_END = 1, 2, 3, 0xCE
RECV_BYTES = 65536  # per socket read (pika reads 4 KiB: six deliveries a system call)

OnMessage = Callable[[int, str, bytes], None]


def _delivery(buf: bytes, pos: int, channel: int, tags: frozenset[bytes]):
    """The delivery starting at `pos`: (end, delivery tag, routing key, body); None when
    its frames are not all in `buf` yet; False when it is not one for the fast lane."""
    n = len(buf)
    _, _, size = _HEADER.unpack_from(buf, pos)
    end = pos + 8 + size
    if end > n:
        return None
    if buf[end - 1] != _FRAME_END:
        raise InvalidFrameError("Invalid FRAME_END marker")
    p = pos + 11
    tag_end = p + 1 + buf[p]
    if buf[p + 1:tag_end] not in tags:
        return False
    (delivery_tag,) = _BODY_SIZE.unpack_from(buf, tag_end)
    p = tag_end + 9  # delivery tag, redelivered
    p += 1 + buf[p]  # exchange
    # a routing key that is not UTF-8 (only a foreign publisher could send one) reaches the
    # consumer with replacement characters, to be refused there, not raised in the read loop
    routing_key = buf[p + 1:p + 1 + buf[p]].decode("utf-8", "replace")
    if end + 7 > n:
        return None
    kind, on, size = _HEADER.unpack_from(buf, end)
    if kind != _CONTENT_HEADER or on != channel:
        return False
    header_end = end + 8 + size
    if header_end > n:
        return None
    if buf[header_end - 1] != _FRAME_END:
        raise InvalidFrameError("Invalid FRAME_END marker")
    (remaining,) = _BODY_SIZE.unpack_from(buf, end + 11)  # after class id and weight
    parts, p = [], header_end
    while remaining > 0:
        if p + 7 > n:
            return None
        kind, on, size = _HEADER.unpack_from(buf, p)
        if kind != _BODY or on != channel:
            return False
        body_end = p + 8 + size
        if body_end > n:
            return None
        if buf[body_end - 1] != _FRAME_END:
            raise InvalidFrameError("Invalid FRAME_END marker")
        parts.append(buf[p + 7:body_end - 1])
        remaining -= size
        p = body_end
    return p, delivery_tag, routing_key, parts[0] if len(parts) == 1 else b"".join(parts)


def install(impl, channel: int, consumer_tags: list[str], on_message: OnMessage) -> None:
    """Reads deliveries to `consumer_tags` on channel number `channel` of the pika
    connection `impl` (a BlockingConnection's _impl) without pika's objects."""
    tags = frozenset(tag.encode() for tag in consumer_tags)
    process_frame = impl._process_frame
    transport = getattr(impl, "_transport", None)
    if transport is not None:
        transport._MAX_RECV_BYTES = RECV_BYTES

    def on_data_available(data_in: bytes) -> None:
        buf: bytes | None = impl._frame_buffer + data_in if impl._frame_buffer else data_in
        pos = 0
        try:
            while pos < len(buf):
                if (len(buf) - pos >= 11 and buf[pos] == _METHOD and buf[pos + 7:pos + 11] == _DELIVER
                        and _HEADER.unpack_from(buf, pos)[1] == channel):
                    found = _delivery(buf, pos, channel, tags)
                    if found is None:
                        return
                    if found is not False:
                        end, delivery_tag, routing_key, body = found
                        impl.bytes_received += end - pos
                        pos = end
                        on_message(delivery_tag, routing_key, body)
                        continue
                # anything else: pika's decoder and dispatch, one frame, with the connection's
                # buffer holding what follows (as pika's own loop leaves it)
                consumed, frame_value = pika_frame.decode_frame(buf[pos:] if pos else buf)
                if not frame_value:
                    return
                impl._frame_buffer, buf = buf[pos + consumed:], None
                impl.bytes_received += consumed
                process_frame(frame_value)
                buf, pos = impl._frame_buffer, 0
        finally:
            if buf is not None:  # else pika's dispatch raised: the buffer holds what follows
                impl._frame_buffer = buf[pos:] if pos else buf

    impl._on_data_available = on_data_available
