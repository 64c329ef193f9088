"""ClickHouse tables. The SQL runs on 18.16 and on current servers; newer types are used
only when `Analytics.supports()` says the server has them."""

from __future__ import annotations

from dataclasses import dataclass

from altcraft.stores.analytics import Analytics


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    default: str = ""
    low_cardinality: bool = False  # LowCardinality(type) where the server supports it

    def ddl(self, store: Analytics) -> str:
        kind = self.type
        if self.low_cardinality and store.supports("low_cardinality"):
            kind = f"LowCardinality({kind})"
        default = f" DEFAULT {self.default}" if self.default else ""
        return f"`{self.name}` {kind}{default}"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    engine: str
    partition_by: str
    order_by: str

    def create_sql(self, store: Analytics) -> str:
        columns = ",\n  ".join(c.ddl(store) for c in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {store.table(self.name)} (\n  {columns}\n)\n"
            f"ENGINE = {self.engine}\nPARTITION BY {self.partition_by}\nORDER BY {self.order_by}"
        )


# Every tracked and delivery event. ReplacingMergeTree keyed on event_id drops a redelivered
# copy of an event at merge time; reports count with uniqExact(event_id) or FINAL so that a
# copy not yet merged away is not counted twice either.
EVENTS = Table(
    name="events",
    columns=(
        Column("event_id", "UUID"),
        Column("event_time", "DateTime"),
        Column("event_date", "Date", default="toDate(event_time)"),
        Column("account_id", "UInt32"),
        Column("db_id", "UInt32"),  # the profile database (#5)
        Column("kind", "String", low_cardinality=True),
        Column("channel", "String", low_cardinality=True),
        Column("campaign_id", "UInt64"),
        Column("profile_id", "String"),
        Column("resource_id", "UInt64"),
        Column("sender_id", "UInt64"),
        Column("link_id", "UInt32"),
        Column("url", "String"),
        Column("is_bot", "UInt8"),
        Column("bot_reason", "String", low_cardinality=True),  # why is_bot is set (botfilter.py)
        Column("ip", "String"),
        Column("user_agent", "String"),
        Column("detail", "String"),
    ),
    engine="ReplacingMergeTree()",
    partition_by="toYYYYMM(event_date)",
    order_by="(account_id, campaign_id, kind, event_id)",
)

# The audit journal (domain/audit.py): append-only, one row per change, a hash chain over seq.
# MergeTree, never Replacing/Collapsing: nothing may merge an entry away.
AUDIT = Table(
    name="audit",
    columns=(
        Column("seq", "UInt64"),
        Column("at", "DateTime"),
        Column("at_ms", "UInt64"),
        Column("actor_kind", "String", low_cardinality=True),
        Column("actor_id", "String"),
        Column("actor_name", "String"),
        Column("source", "String"),
        Column("channel", "String", low_cardinality=True),
        Column("action", "String", low_cardinality=True),
        Column("object_kind", "String", low_cardinality=True),
        Column("object_id", "String"),
        Column("account_id", "UInt64"),
        Column("summary", "String"),
        Column("prev_hash", "String"),
        Column("hash", "String"),
    ),
    engine="MergeTree()",
    partition_by="toYYYYMM(at)",
    order_by="seq",
)

TABLES: tuple[Table, ...] = (EVENTS, AUDIT)


def migrate(store: Analytics, dry_run: bool = False) -> list[tuple[str, str]]:
    """Create missing database and tables, add missing columns. Returns (object, action)."""
    changes: list[tuple[str, str]] = []
    databases = {row[0] for row in store.execute("SELECT name FROM system.databases")}
    if store.database not in databases:
        changes.append((f"database {store.database}", "create"))
        if not dry_run:
            store.execute(f"CREATE DATABASE IF NOT EXISTS `{store.database}`")
    for table in TABLES:
        existing = {
            row[0] for row in store.execute(
                "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(t)s",
                {"db": store.database, "t": table.name},
            )
        } if store.database in databases else set()
        if not existing:
            changes.append((f"table {table.name}", "create"))
            if not dry_run:
                store.execute(table.create_sql(store))
            continue
        for column in table.columns:
            if column.name not in existing:
                changes.append((f"column {table.name}.{column.name}", "add"))
                if not dry_run:
                    store.execute(f"ALTER TABLE {store.table(table.name)} ADD COLUMN {column.ddl(store)}")
    return changes
