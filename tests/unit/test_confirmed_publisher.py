"""ConfirmedPublisher: one reconnect, then fail fast for a while when the broker is away."""

from __future__ import annotations

import pika.exceptions
import pytest

from altcraft.stores import confirmed
from altcraft.stores.broker import Message


class FlakyBroker:
    made: list["FlakyBroker"] = []
    fail = 0  # how many publishes fail from now on

    def __init__(self, config, app):
        FlakyBroker.made.append(self)
        self.sent = []

    def publish(self, message):
        if FlakyBroker.fail:
            FlakyBroker.fail -= 1
            raise pika.exceptions.AMQPConnectionError("down")
        self.sent.append(message)

    def close(self):
        pass


@pytest.fixture
def publisher(monkeypatch):
    FlakyBroker.made, FlakyBroker.fail = [], 0
    now = [100.0]
    monkeypatch.setattr(confirmed, "Broker", FlakyBroker)
    monkeypatch.setattr(confirmed.time, "monotonic", lambda: now[0])
    return confirmed.ConfirmedPublisher(config=None, app="t"), now


def test_a_lost_connection_is_made_again_once(publisher):
    pub, _ = publisher
    FlakyBroker.fail = 1
    pub.publish(Message("x", "k", b"1"))
    assert len(FlakyBroker.made) == 2 and FlakyBroker.made[1].sent


def test_a_broker_that_stays_away_fails_fast_until_retry_seconds_passed(publisher):
    pub, now = publisher
    FlakyBroker.fail = 2
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pub.publish(Message("x", "k", b"1"))
    with pytest.raises(confirmed.BrokerAway):
        pub.publish(Message("x", "k", b"2"))
    assert len(FlakyBroker.made) == 2  # the second call did not try
    now[0] += confirmed.RETRY_SECONDS
    pub.publish(Message("x", "k", b"3"))
    assert [m.body for m in FlakyBroker.made[-1].sent] == [b"3"]
