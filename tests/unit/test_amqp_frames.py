"""The fast lane for deliveries (stores/amqp_frames.py) against pika's own frames: whatever
way the bytes arrive, our consumers' deliveries come out whole and in order, and every
other frame reaches pika's dispatch unchanged, in its place in the stream."""

from __future__ import annotations

import random

import pytest
from pika import frame, spec
from pika.exceptions import InvalidFrameError

from altcraft.stores import amqp_frames

CHANNEL = 1
TAGS = ["ours-1", "ours-2"]


class Connection:
    """The part of pika's Connection that the fast lane uses, recording what pika would
    have been given."""

    def __init__(self):
        self._frame_buffer = b""
        self.bytes_received = 0
        self.seen: list[tuple] = []

    def _process_frame(self, value) -> None:
        self.seen.append(("pika", type(value).__name__, getattr(value, "channel_number", None),
                          getattr(getattr(value, "method", None), "NAME", None)))


def delivery(tag: int, body: bytes, *, consumer: str = "ours-1", channel: int = CHANNEL, frame_max: int = 4096,
             routing_key: str = "action.click") -> bytes:
    out = frame.Method(channel, spec.Basic.Deliver(consumer, tag, False, "altcraft.events", routing_key)).marshal()
    properties = spec.BasicProperties(message_id=f"m{tag}", delivery_mode=2, headers={"x": "y"})
    out += frame.Header(channel, len(body), properties).marshal()
    for start in range(0, len(body), frame_max - 8):
        out += frame.Body(channel, body[start:start + frame_max - 8]).marshal()
    return out


def stream():
    """Bytes of a realistic mix and what should come of them."""
    parts, expected = [], []
    rng = random.Random(18)
    for tag in range(1, 41):
        body = rng.randbytes(rng.choice((0, 1, 300, 5000, 9000)))
        consumer = TAGS[tag % 2]
        parts.append(delivery(tag, body, consumer=consumer))
        expected.append(("ours", tag, "action.click", body))
        if tag % 7 == 0:
            parts.append(frame.Heartbeat().marshal())
            expected.append(("pika", "Heartbeat", 0, None))
        if tag % 11 == 0:  # another consumer's delivery, and one on another channel: pika's
            parts.append(delivery(1000 + tag, b"theirs", consumer="someone-else"))
            expected += [("pika", "Method", CHANNEL, "Basic.Deliver"), ("pika", "Header", CHANNEL, None),
                         ("pika", "Body", CHANNEL, None)]
            parts.append(delivery(2000 + tag, b"", channel=2))
            expected += [("pika", "Method", 2, "Basic.Deliver"), ("pika", "Header", 2, None)]
        if tag == 20:
            parts.append(frame.Method(CHANNEL, spec.Queue.DeclareOk("events.actions", 5, 1)).marshal())
            expected.append(("pika", "Method", CHANNEL, "Queue.DeclareOk"))
    return b"".join(parts), expected


def feed(chunks: list[bytes]) -> Connection:
    connection = Connection()
    amqp_frames.install(connection, CHANNEL, TAGS,
                        lambda tag, key, body: connection.seen.append(("ours", tag, key, body)))
    for chunk in chunks:
        connection._on_data_available(chunk)
    return connection


def test_a_stream_read_whole_gives_every_delivery_and_every_other_frame_in_order():
    data, expected = stream()
    connection = feed([data])
    assert connection.seen == expected
    assert connection.bytes_received == len(data) and connection._frame_buffer == b""


@pytest.mark.parametrize("seed", range(6))
def test_the_same_stream_in_chunks_cut_anywhere_gives_the_same(seed):
    data, expected = stream()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), 400 if seed % 2 else 40))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    connection = feed(chunks)
    assert connection.seen == expected
    assert connection.bytes_received == len(data) and connection._frame_buffer == b""


def test_byte_by_byte_and_a_partial_delivery_waits_for_the_rest():
    one = delivery(7, b"x" * 10000)
    connection = feed([one[i:i + 1] for i in range(len(one) - 1)])
    assert connection.seen == [] and connection._frame_buffer == one[:-1]
    connection._on_data_available(one[-1:])
    assert connection.seen == [("ours", 7, "action.click", b"x" * 10000)]


def test_a_broken_frame_end_is_refused_as_pika_refuses_it():
    broken = bytearray(delivery(3, b"body"))
    broken[-1] = 0
    with pytest.raises(InvalidFrameError):
        feed([bytes(broken)])


def test_a_routing_key_that_is_not_utf8_reaches_the_consumer_not_an_exception():
    one = bytearray(delivery(9, b"{}", routing_key="action.click"))
    at = one.index(b"action.click")
    one[at + 7] = 0xFF  # "action.\xfflick"
    connection = feed([bytes(one)])
    assert connection.seen == [("ours", 9, "action.\ufffdlick", b"{}")]
