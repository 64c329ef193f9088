"""A publisher for request handlers: one broker connection per process, shared by its
threads, each message confirmed before `publish` returns; a lost connection is made again
once before the error reaches the caller. After a failed connection, calls fail at once for
RETRY_SECONDS, so that a broker that is away does not hold every request for its timeout."""

from __future__ import annotations

import threading
import time

import pika.exceptions

from altcraft.config import MainConfig
from altcraft.stores.broker import Broker, Message, PublishError

RETRY_SECONDS = 5.0


class BrokerAway(ConnectionError):
    """The broker could not be reached a moment ago; not tried again yet."""


class ConfirmedPublisher:
    def __init__(self, config: MainConfig, app: str):
        self._config = config
        self._app = app
        self._broker: Broker | None = None
        self._lock = threading.Lock()
        self._away_until = 0.0

    def publish(self, message: Message) -> None:
        with self._lock:
            if time.monotonic() < self._away_until:
                raise BrokerAway("the broker was not reachable a moment ago")
            for attempt in (1, 2):
                try:
                    if self._broker is None:
                        self._broker = Broker(self._config, app=self._app)
                    self._broker.publish(message)
                    return
                except PublishError:
                    raise
                except (pika.exceptions.AMQPError, OSError):
                    self.close_unlocked()
                    if attempt == 2:
                        self._away_until = time.monotonic() + RETRY_SECONDS
                        raise

    def close_unlocked(self) -> None:
        if self._broker is not None:
            try:
                self._broker.close()
            except (pika.exceptions.AMQPError, OSError):
                pass
            self._broker = None

    def close(self) -> None:
        with self._lock:
            self.close_unlocked()
