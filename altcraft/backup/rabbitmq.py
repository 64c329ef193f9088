"""RabbitMQ definitions of the platform's vhost: exchanges, durable queues, bindings.

The management HTTP API is not something every installation enables (the test broker has
no plugins), and AMQP cannot list a vhost's objects, so the definitions are the platform's
declared topology (altcraft.schema.rabbitmq) plus the per-sender MTA queues of the senders
in the control database, each checked on the broker by a passive declare. Messages are not
backed up: the queue depths at backup time are recorded so a non-empty queue is visible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from altcraft.mta import envelope
from altcraft.schema import rabbitmq as topology
from altcraft.stores.broker import Broker, Exchange, Queue


def mta_queue_names(sender_ids: list[int]) -> list[str]:
    return [name for sid in sorted(sender_ids) for name, _ in envelope.queues(sid)]


def definitions(vhost: str, sender_ids: list[int]) -> dict[str, Any]:
    queues = [{"name": q.name, "durable": True, "arguments": q.arguments} for q in topology.QUEUES]
    queues += [{"name": n, "durable": True, "arguments": {}} for n in mta_queue_names(sender_ids)]
    return {
        "vhost": vhost,
        "source": "declared",  # the platform's declared topology, not a management API export
        "exchanges": [{"name": e.name, "type": e.kind, "durable": True, "arguments": e.arguments}
                      for e in topology.EXCHANGES],
        "queues": queues,
        "bindings": [{"source": ex, "destination": q.name, "destination_type": "queue", "routing_key": key}
                     for q in topology.QUEUES for ex, key in q.bindings],
    }


def dump(broker: Broker, vhost: str, sender_ids: list[int], path: Path) -> dict[str, Any]:
    defs = definitions(vhost, sender_ids)
    depths: dict[str, int | None] = {}
    for queue in defs["queues"]:
        depths[queue["name"]] = broker.queue_depth(queue["name"]) if broker.exists("queue", queue["name"]) else None
    missing = [e["name"] for e in defs["exchanges"] if not broker.exists("exchange", e["name"])]
    path.write_text(json.dumps(defs, indent=2, sort_keys=True) + "\n")
    return {"vhost": vhost, "exchanges": len(defs["exchanges"]), "queues": len(defs["queues"]),
            "bindings": len(defs["bindings"]), "queue_depths": depths, "missing_exchanges": missing,
            "messages_included": False}


def check_readable(path: Path, expected: dict[str, Any]) -> str | None:
    try:
        defs = json.loads(path.read_text())
        counts = (len(defs["exchanges"]), len(defs["queues"]), len(defs["bindings"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"not readable: {exc}"
    if counts != (expected["exchanges"], expected["queues"], expected["bindings"]):
        return f"holds {counts} exchanges/queues/bindings, the manifest says otherwise"
    return None


def restore(broker: Broker, path: Path) -> None:
    defs = json.loads(path.read_text())
    for e in defs["exchanges"]:
        broker.declare_exchange(Exchange(e["name"], e["type"], e.get("arguments") or {}))
    for q in defs["queues"]:
        bindings = tuple((b["source"], b["routing_key"]) for b in defs["bindings"] if b["destination"] == q["name"])
        broker.declare_queue(Queue(q["name"], bindings, q.get("arguments") or {}))


def present(broker: Broker, path: Path) -> dict[str, Any]:
    """How many of the dump's exchanges and queues exist on the broker now."""
    defs = json.loads(path.read_text())
    return {"exchanges": sum(broker.exists("exchange", e["name"]) for e in defs["exchanges"]),
            "queues": sum(broker.exists("queue", q["name"]) for q in defs["queues"]),
            "bindings": len(defs["bindings"])}
