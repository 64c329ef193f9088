"""The ready queues: messages that may be sent now, per route, priority first; and the
backlog that decides whether akmtad takes more messages in."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Collection

from altcraft.mta.routes import Route


def intake_open(backlog: int, max_spooled: int) -> bool:
    """Intake goes on while fewer than MTA.MAX_SPOOLED messages are ready to be sent; the rest
    wait in RabbitMQ (durable, and there for other sending nodes)."""
    return backlog < max_spooled


class ReadyQueues:
    def __init__(self) -> None:
        # per route: (priority queue, normal queue) of Message-IDs
        self.queues: dict[Route, tuple[deque[str], deque[str]]] = defaultdict(lambda: (deque(), deque()))
        # messages in the queues, per sender: what backlog() counts
        self.queued: dict[str, int] = {}
        self.by_sender: Counter[int] = Counter()

    def push(self, route: Route, message_id: str, priority: bool, front: bool = False) -> None:
        queue = self.queues[route][0 if priority else 1]
        if front:
            queue.appendleft(message_id)
        else:
            queue.append(message_id)
        if message_id not in self.queued:
            self.queued[message_id] = route.sender_id
            self.by_sender[route.sender_id] += 1

    def pop(self, route: Route) -> str | None:
        prior, normal = self.queues[route]
        if not prior and not normal:
            return None
        message_id = (prior or normal).popleft()
        self.forget(message_id)
        return message_id

    def forget(self, message_id: str) -> None:
        """The message left the queues (taken, or ended): no longer counted."""
        sender_id = self.queued.pop(message_id, None)
        if sender_id is not None:
            self.by_sender[sender_id] -= 1

    def backlog(self, held: Collection[int]) -> int:
        """Messages ready to be sent now, of senders not on hold (held and deferred messages
        wait on something else and must not stop the intake of others). Read from the intake
        thread: one pass over a small per-sender table."""
        return sum(n for sender_id, n in list(self.by_sender.items()) if sender_id not in held)
