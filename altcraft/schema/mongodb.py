"""MongoDB indexes of the control database."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.database import Database


@dataclass(frozen=True)
class Index:
    collection: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False

    @property
    def name(self) -> str:
        return "_".join(f"{field}_{direction}" for field, direction in self.keys) + (
            "_uniq" if self.unique else ""
        )


CONTROL_INDEXES: tuple[Index, ...] = (
    Index("accounts", (("id", 1),), unique=True),
    Index("accounts", (("name", 1),), unique=True),
    Index("users", (("id", 1),), unique=True),
    Index("admins", (("id", 1),), unique=True),
    Index("tokens", (("id", 1),), unique=True),
    Index("users", (("login", 1),), unique=True),
    Index("users", (("account_id", 1),)),
    Index("admins", (("login", 1),), unique=True),
    Index("tokens", (("token_hash", 1),), unique=True),
    Index("tokens", (("account_id", 1),)),
    Index("senders", (("name", 1),)),
    Index("vsenders", (("id", 1),), unique=True),
    Index("vsenders", (("account_id", 1), ("name", 1)), unique=True),
    Index("campaigns", (("vsender_id", 1),)),
    Index("campaigns", (("account_id", 1), ("id", -1))),  # an account's campaigns, newest first, by key
    Index("campaign_log", (("campaign_id", 1), ("time", 1))),  # a campaign's log_v2, oldest first
    Index("triggers", (("id", 1),), unique=True),  # trigger campaigns (domain/triggers.py)
    Index("triggers", (("account_id", 1), ("active", 1))),
    Index("trigger_sends", (("state", 1), ("due_at", 1))),
    Index("webhooks", (("id", 1),), unique=True),
    Index("webhooks", (("account_id", 1),)),
    # the outbox's (endpoint, event) uniqueness is its _id (the webhook-id); these find due
    # entries and an account's log
    Index("webhook_outbox", (("state", 1), ("next_at", 1))),
    Index("webhook_outbox", (("account_id", 1), ("created_at", -1))),
    # scenarios (domain/scenarios.py): the entry key keeps the re-entry policy; runs are timers
    Index("workflows", (("id", 1),), unique=True),
    Index("workflows", (("account_id", 1), ("active", 1))),
    Index("workflow_versions", (("scenario_id", 1), ("version", 1)), unique=True),
    Index("workflow_runs", (("entry_key", 1),), unique=True),
    Index("workflow_runs", (("state", 1), ("due_at", 1))),
    Index("workflow_runs", (("profile_id", 1), ("awaiting", 1))),  # procevent's deliver
    Index("workflow_steps", (("scenario_id", 1), ("node", 1))),
)


def migrate(db: Database, dry_run: bool = False) -> list[tuple[str, str]]:
    changes: list[tuple[str, str]] = []
    for index in CONTROL_INDEXES:
        collection = db[index.collection]
        if index.name in {i["name"] for i in collection.list_indexes()}:
            continue
        changes.append((f"index {index.collection}.{index.name}", "create"))
        if not dry_run:
            collection.create_index(list(index.keys), name=index.name, unique=index.unique)
    return changes
