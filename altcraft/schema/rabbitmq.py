"""RabbitMQ topology: exchanges and durable queues shared by the platform's processes.

The per-sender MTA queues (named in altcraft.mta.envelope) are declared by their producers
and by akmtad, not here.
"""

from __future__ import annotations

from altcraft.domain.events import AUTOMATION_BINDINGS
from altcraft.stores.broker import Broker, Exchange, Queue

EVENTS_EXCHANGE = "altcraft.events"
DEAD_EXCHANGE = "altcraft.dead"
_DEAD_LETTER = {"x-dead-letter-exchange": DEAD_EXCHANGE}
AUTOMATION_QUEUE = "events.automation"
TRIGGER_JOBS_QUEUE = "triggers.jobs"

EXCHANGES: tuple[Exchange, ...] = (
    Exchange(EVENTS_EXCHANGE, "topic"),
    Exchange(DEAD_EXCHANGE, "fanout"),
)

QUEUES: tuple[Queue, ...] = (
    # opens, clicks, unsubscribes from the tracking processes -> procactions
    Queue("events.actions", ((EVENTS_EXCHANGE, "action.#"),), _DEAD_LETTER),
    # delivered, deferred, bounced, dropped from akmtad -> procactions
    Queue("events.delivery", ((EVENTS_EXCHANGE, "delivery.#"),), _DEAD_LETTER),
    # custom events, profile changes, tracking (un)subscribes -> procevent (trigger matching)
    Queue(AUTOMATION_QUEUE, tuple((EVENTS_EXCHANGE, key) for key in AUTOMATION_BINDINGS), _DEAD_LETTER),
    # sends handed to proctrigger by procevent and the API (default exchange, by queue name)
    Queue(TRIGGER_JOBS_QUEUE, (), _DEAD_LETTER),
    # every event, whatever its type (`#`), -> prochook's outbox of outgoing webhooks
    Queue("events.webhooks", ((EVENTS_EXCHANGE, "#"),)),
    # messages a consumer rejected; kept for inspection, never dropped silently
    Queue("events.dead", ((DEAD_EXCHANGE, ""),)),
)


def migrate(broker: Broker, dry_run: bool = False) -> list[tuple[str, str]]:
    changes: list[tuple[str, str]] = []
    for exchange in EXCHANGES:
        if not broker.exists("exchange", exchange.name):
            changes.append((f"exchange {exchange.name}", "create"))
            if not dry_run:
                broker.declare_exchange(exchange)
    for queue in QUEUES:
        if not broker.exists("queue", queue.name):
            changes.append((f"queue {queue.name}", "create"))
            if not dry_run:
                broker.declare_queue(queue)
        elif not dry_run:
            # Bindings cannot be listed over AMQP; binding again is a no-op on the broker
            # and mends a binding lost between a declare and a bind.
            broker.bind_queue(queue)
    return changes
