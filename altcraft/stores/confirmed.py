"""A publisher for request handlers: one broker connection per process, shared by its
threads, each message confirmed before `publish` returns; a lost connection is made again
once before the error reaches the caller."""

from __future__ import annotations

import threading

import pika.exceptions

from altcraft.config import MainConfig
from altcraft.stores.broker import Broker, Message, PublishError


class ConfirmedPublisher:
    def __init__(self, config: MainConfig, app: str):
        self._config = config
        self._app = app
        self._broker: Broker | None = None
        self._lock = threading.Lock()

    def publish(self, message: Message) -> None:
        with self._lock:
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
