"""Brings every store to the schema this version of the platform needs."""

from __future__ import annotations

from dataclasses import dataclass

from altcraft.config import MainConfig
from altcraft.schema import clickhouse, mongodb, rabbitmq
from altcraft.stores import analytics, broker, documents


@dataclass(frozen=True)
class Change:
    store: str
    target: str
    action: str

    def as_dict(self) -> dict:
        return {"store": self.store, "object": self.target, "action": self.action}


def run(config: MainConfig, dry_run: bool = False) -> list[Change]:
    """Creates what is missing, in every store; a second run returns no changes.

    Raises the store's own error when a store cannot be reached: migrate never reports
    success for a store it did not see.
    """
    changes: list[Change] = []

    client = documents.connect(config, "control")
    try:
        db = documents.control_db(client, config)
        changes += [Change("controldb", t, a) for t, a in mongodb.migrate(db, dry_run)]
    finally:
        client.close()

    store = analytics.Analytics(config.CLICKHOUSE_SYSTEM)
    try:
        changes += [Change("clickhouse", t, a) for t, a in clickhouse.migrate(store, dry_run)]
    finally:
        store.close()

    with broker.Broker(config, app="altcraft-migrate") as b:
        changes += [Change("rabbitmq", t, a) for t, a in rabbitmq.migrate(b, dry_run)]
    return changes
