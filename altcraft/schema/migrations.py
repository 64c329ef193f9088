"""Numbered migrations per store: the changes desired state cannot express.

Desired state (mongodb.py, clickhouse.py, rabbitmq.py) adds what is missing and runs
first. A migration here does what it cannot: backfill a field, rename a column, move data.
Rules for adding one:
  - the next number of its store, never reusing or renumbering one that shipped;
  - idempotent: a run killed halfway is taken over and applied again from the start;
  - `apply` gets a Context (migrate.py) and returns one line saying what it did.
Each is recorded once in the ledger (ledger.py); a store's schema version is the highest
number applied to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

STORES = ("mongodb", "clickhouse", "rabbitmq")


@dataclass(frozen=True)
class Migration:
    store: str
    version: int
    name: str
    apply: Callable[[Any], str]

    @property
    def key(self) -> tuple[str, int]:
        return (self.store, self.version)

    def as_dict(self) -> dict[str, Any]:
        return {"store": self.store, "version": self.version, "name": self.name}


def _baseline(store: str) -> Callable[[Any], str]:
    def apply(ctx: Any) -> str:
        return f"{store}: the schema of platform 0.1.0, as desired state creates it"
    return apply


# Migration 1 of every store is the baseline: the schema desired state builds at 0.1.0.
# It changes nothing; recording it says "this store is at least at the baseline".
MIGRATIONS: tuple[Migration, ...] = (
    Migration("mongodb", 1, "baseline", _baseline("mongodb")),
    Migration("clickhouse", 1, "baseline", _baseline("clickhouse")),
    Migration("rabbitmq", 1, "baseline", _baseline("rabbitmq")),
)


class InvalidMigrations(ValueError):
    """The list itself is wrong (a gap, a repeated number, an unknown store)."""


def validate(migrations: Iterable[Migration]) -> None:
    """Every store numbered 1, 2, 3, ... without gaps or repeats; known stores only."""
    by_store: dict[str, list[int]] = {}
    for m in migrations:
        if m.store not in STORES:
            raise InvalidMigrations(f"migration {m.store} {m.version} ({m.name}): unknown store; "
                                    f"known: {', '.join(STORES)}")
        by_store.setdefault(m.store, []).append(m.version)
    for store, versions in by_store.items():
        if sorted(versions) != list(range(1, len(versions) + 1)):
            raise InvalidMigrations(f"migrations of {store} are numbered {sorted(versions)}: "
                                    "they must run 1, 2, 3, ... without gaps or repeats")


def latest(migrations: Iterable[Migration] = MIGRATIONS) -> dict[str, int]:
    """The schema version of each store once every migration of this package is applied."""
    versions: dict[str, int] = {}
    for m in migrations:
        versions[m.store] = max(versions.get(m.store, 0), m.version)
    return versions


def pending(applied: Iterable[tuple[str, int]], migrations: Iterable[Migration] = MIGRATIONS) -> list[Migration]:
    """The migrations not yet applied, in the order they run: by store, then by number."""
    done = set(applied)
    order = {store: i for i, store in enumerate(STORES)}
    return sorted((m for m in migrations if m.key not in done), key=lambda m: (order[m.store], m.version))


def too_new(versions: dict[str, int], migrations: Iterable[Migration] = MIGRATIONS) -> list[str]:
    """Stores whose recorded schema is newer than this package knows (a downgrade)."""
    known = latest(migrations)
    return [f"{store} is at schema {v}, this version knows up to {known.get(store, 0)}"
            for store, v in sorted(versions.items()) if v > known.get(store, 0)]
