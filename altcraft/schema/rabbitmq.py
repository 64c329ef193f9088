"""RabbitMQ topology: exchanges and durable queues shared by the platform's processes.

The per-sender MTA queues (named in altcraft.mta.envelope) are declared by their producers
and by akmtad, not here. Every queue, here and there, is declared through
Broker.declare_durable_queue, which gives it main.json's RABBITMQ_QUEUE_TYPE (`classic`, or
`quorum` on the fail-safe scheme's three-node cluster): RabbitMQ 3.10 takes the type only at
declaration and cannot convert a queue, so a queue found as the other type stops the
migration, named with what the operator must do.
"""

from __future__ import annotations

from altcraft.domain.events import AUTOMATION_BINDINGS
from altcraft.stores.broker import Broker, Exchange, Queue, QueueTypeMismatch, queue_arguments

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


class QueueTypesDiffer(RuntimeError):
    """Queues that exist as the other type than RABBITMQ_QUEUE_TYPE (each QueueTypeMismatch)."""

    def __init__(self, mismatches: list[QueueTypeMismatch]):
        self.mismatches = mismatches
        super().__init__(f"{len(mismatches)} queue(s) of the wrong type, nothing converted:\n"
                         + "\n".join(f"  - {m}" for m in mismatches))


def migrate(broker: Broker, dry_run: bool = False) -> list[tuple[str, str]]:
    """Creates the missing exchanges and queues. Raises UnsupportedQueueArguments before any
    change when a queue's arguments do not fit the queue type, and QueueTypesDiffer (after
    creating what is missing) when existing queues are of the other type."""
    for queue in QUEUES:
        queue_arguments(broker.queue_type, queue.name, queue.arguments)
    changes: list[tuple[str, str]] = []
    mismatches: list[QueueTypeMismatch] = []
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
            continue
        try:
            # an existing queue declared again as wanted: a no-op, or a refusal naming its type
            broker.declare_durable_queue(queue.name, queue.arguments)
        except QueueTypeMismatch as exc:
            mismatches.append(exc)
            continue
        if not dry_run:
            # Bindings cannot be listed over AMQP; binding again is a no-op on the broker
            # and mends a binding lost between a declare and a bind.
            broker.bind_queue(queue)
    if mismatches:
        raise QueueTypesDiffer(mismatches)
    return changes
