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


# -- versioned migrations (migrations.py, recorded in ledger.py) ----------------------------
VERSION_COLLECTION = "platform_version"  # one document: the version that last migrated


class TooNew(Exception):
    """The stores hold a schema newer than this package knows: it would be a downgrade."""


class Context:
    """What a migration works on; each store is opened when first asked for."""

    def __init__(self, config: MainConfig, control):
        self.config, self.control = config, control
        self._analytics: analytics.Analytics | None = None
        self._broker: broker.Broker | None = None
        self._accounts = None

    @property
    def analytics(self) -> analytics.Analytics:
        if self._analytics is None:
            self._analytics = analytics.Analytics(self.config.CLICKHOUSE_SYSTEM)
        return self._analytics

    @property
    def broker(self) -> broker.Broker:
        if self._broker is None:
            self._broker = broker.Broker(self.config, app="altcraft-migrate").__enter__()
        return self._broker

    @property
    def accounts(self):
        """The client of the account databases (`ACCOUNTDB_PREFIX<id>`)."""
        if self._accounts is None:
            self._accounts = documents.connect(self.config, "account")
        return self._accounts

    def close(self) -> None:
        if self._analytics is not None:
            self._analytics.close()
        if self._broker is not None:
            self._broker.__exit__(None, None, None)
        if self._accounts is not None:
            self._accounts.close()


@dataclass
class Outcome:
    changes: list[Change]            # desired state: what was (or would be) created
    applied: list[dict]              # migrations this run applied, with what each did
    pending: list[dict]              # migrations still to apply (a dry run lists them here)
    versions: dict[str, int]         # schema version per store after the run

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.applied)

    def as_dict(self, dry_run: bool = False) -> dict:
        return {"dry_run": dry_run, "changes": [c.as_dict() for c in self.changes],
                "migrations_applied": self.applied, "migrations_pending": self.pending,
                "schema_versions": self.versions}


def recorded_platform_version(control) -> str | None:
    doc = control[VERSION_COLLECTION].find_one({"_id": "platform"})
    return doc["version"] if doc else None


def schema_versions(config: MainConfig) -> dict[str, int]:
    """The schema version of every store, from the ledger (the backup manifest records it)."""
    from altcraft.schema.ledger import Ledger

    client = documents.connect(config, "control")
    try:
        return Ledger(documents.control_db(client, config)).versions()
    finally:
        client.close()


def apply(config: MainConfig, dry_run: bool = False, migrations=None, lease: float = 300.0,
          on_migration=None) -> Outcome:
    """Desired state in every store, then every pending numbered migration, each applied
    once across concurrent runs and recorded in the ledger. A second run changes nothing."""
    import altcraft
    from altcraft.schema import migrations as numbered
    from altcraft.schema.ledger import Ledger

    migrations = numbered.MIGRATIONS if migrations is None else tuple(migrations)
    numbered.validate(migrations)
    client = documents.connect(config, "control")
    try:
        control = documents.control_db(client, config)
        ledger = Ledger(control)
        if problems := numbered.too_new(ledger.versions(), migrations):
            raise TooNew("; ".join(problems) + f" (platform {altcraft.__version__}): install the newer "
                         "version again, or restore a backup taken before the upgrade")
        changes = run(config, dry_run)
        todo = numbered.pending(((r.store, r.version) for r in ledger.applied()), migrations)
        if dry_run:
            return Outcome(changes, [], [m.as_dict() for m in todo], ledger.versions())
        ledger.ensure_index()
        applied: list[dict] = []
        context = Context(config, control)
        try:
            for migration in todo:
                if on_migration is not None:
                    on_migration(migration)
                detail = _apply_once(ledger, migration, context, lease, altcraft.__version__)
                if detail is not None:
                    applied.append(migration.as_dict() | {"detail": detail})
        finally:
            context.close()
        if recorded_platform_version(control) != altcraft.__version__:
            control[VERSION_COLLECTION].replace_one(
                {"_id": "platform"}, {"_id": "platform", "version": altcraft.__version__}, upsert=True)
        return Outcome(changes, applied, [], ledger.versions())
    finally:
        client.close()


def _apply_once(ledger, migration, context: Context, lease: float, version: str) -> str | None:
    """Applies the migration if this run wins its claim; waits while another run holds it.
    Returns what it did, or None when it was (or got) applied by another run."""
    import os
    import secrets
    import socket
    import threading
    import time

    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    deadline = time.monotonic() + 2 * lease
    while True:
        state = ledger.claim(migration.store, migration.version, migration.name, owner, lease, version)
        if state == "applied":
            return None
        if state == "claimed":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"migration {migration.store} {migration.version}: another run has held it "
                               f"for over {2 * lease:.0f} s")
        time.sleep(0.2)  # another run applies it: ask again shortly
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease / 3):
            try:
                ledger.renew(migration.store, migration.version, owner, lease)
            except Exception:  # noqa: BLE001 - a missed renewal only shortens the lease
                pass

    renewer = threading.Thread(target=renew, name="migration-lease", daemon=True)
    renewer.start()
    try:
        detail = migration.apply(context)
    except BaseException:
        stop.set()
        ledger.release(migration.store, migration.version, owner)
        raise
    finally:
        stop.set()
        renewer.join(timeout=5)
    ledger.complete(migration.store, migration.version, owner)
    return detail
