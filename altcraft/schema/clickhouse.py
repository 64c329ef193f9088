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
    engine: str  # a MergeTree family member; "Replicated" is put in front on a replicated cluster
    partition_by: str
    order_by: str
    # Where the Distributed table sends a row on a cluster of several shards. Deterministic,
    # so that a retried block is split into the same sub-blocks (each de-duplicated by its
    # shard); for events it is event_id, so that ReplacingMergeTree/FINAL see every copy of
    # an event on one shard.
    sharding_key: str

    def local_name(self) -> str:
        """On a cluster: the table on each server that holds the rows."""
        return f"{self.name}{LOCAL_SUFFIX}"

    def engine_sql(self, store: Analytics) -> str:
        if store.cluster is None or not store.cluster.REPLICATED:
            return f"{self.engine}()"
        # {shard} and {replica} are the server's macros (roles/clickhouse renders them); the
        # replicas of one shard share the ZooKeeper path and so the rows.
        path = f"/clickhouse/tables/{{shard}}/{store.database}.{self.local_name()}"
        return f"Replicated{self.engine}('{path}', '{{replica}}')"

    def _columns_sql(self, store: Analytics) -> str:
        return ",\n  ".join(c.ddl(store) for c in self.columns)

    def create_sql(self, store: Analytics) -> str:
        """The table the rows are stored in: the only one on one server, the local one on a
        cluster."""
        name = self.name if store.cluster is None else self.local_name()
        return (
            f"CREATE TABLE IF NOT EXISTS {store.table(name)}{on_cluster(store)} (\n  {self._columns_sql(store)}\n)\n"
            f"ENGINE = {self.engine_sql(store)}\nPARTITION BY {self.partition_by}\nORDER BY {self.order_by}"
        )

    def distributed_sql(self, store: Analytics) -> str:
        """On a cluster: the table the platform reads and writes, under the plain name."""
        return (
            f"CREATE TABLE IF NOT EXISTS {store.table(self.name)}{on_cluster(store)} (\n  {self._columns_sql(store)}\n)\n"
            f"ENGINE = Distributed({store.cluster.NAME}, '{store.database}', '{self.local_name()}', "
            f"{self.sharding_key})"
        )


LOCAL_SUFFIX = "_local"
# ON CLUSTER DDL waits for every server; a server that is down makes it fail after this many
# seconds, naming the servers that did not answer (below the client's 30 s socket timeout).
DDL_TIMEOUT = 25


def on_cluster(store: Analytics) -> str:
    return f" ON CLUSTER {store.cluster.NAME}" if store.cluster is not None else ""


class ClusterMismatch(RuntimeError):
    """The database holds a table of another layout than the configured one."""


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
    engine="ReplacingMergeTree",
    partition_by="toYYYYMM(event_date)",
    order_by="(account_id, campaign_id, kind, event_id)",
    sharding_key="cityHash64(event_id)",
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
    engine="MergeTree",
    partition_by="toYYYYMM(at)",
    order_by="seq",
    sharding_key="seq",
)

TABLES: tuple[Table, ...] = (EVENTS, AUDIT)


def migrate(store: Analytics, dry_run: bool = False) -> list[tuple[str, str]]:
    """Create missing database and tables, add missing columns. Returns (object, action).

    On a cluster (CLICKHOUSE_SYSTEM.CLUSTER) every statement runs ON CLUSTER: each table is a
    local table (`<name>_local`, Replicated*MergeTree when REPLICATED) on every server and a
    Distributed table under the plain name. What exists is read from the server we talk to;
    the statements are IF NOT EXISTS on every server, so a server added later gets its
    tables from the next migrate."""
    changes: list[tuple[str, str]] = []
    ddl = {"distributed_ddl_task_timeout": DDL_TIMEOUT} if store.cluster is not None else None
    databases = {row[0] for row in store.execute("SELECT name FROM system.databases")}
    if store.database not in databases:
        changes.append((f"database {store.database}", "create"))
        if not dry_run:
            store.execute(f"CREATE DATABASE IF NOT EXISTS `{store.database}`{on_cluster(store)}", settings=ddl)
    engines = dict(store.execute(
        "SELECT name, engine FROM system.tables WHERE database = %(db)s", {"db": store.database}
    )) if store.database in databases else {}
    for table in TABLES:
        layout = [(table.name, table.create_sql)] if store.cluster is None else [
            (table.local_name(), table.create_sql), (table.name, table.distributed_sql)]
        for name, create in layout:
            _check_layout(store, table, name, engines.get(name))
            existing = {
                row[0] for row in store.execute(
                    "SELECT name FROM system.columns WHERE database = %(db)s AND table = %(t)s",
                    {"db": store.database, "t": name},
                )
            } if name in engines else set()
            if not existing:
                changes.append((f"table {name}", "create"))
                if not dry_run:
                    store.execute(create(store), settings=ddl)
                continue
            for column in table.columns:
                if column.name not in existing:
                    changes.append((f"column {name}.{column.name}", "add"))
                    if not dry_run:
                        store.execute(f"ALTER TABLE {store.table(name)}{on_cluster(store)} "
                                      f"ADD COLUMN {column.ddl(store)}", settings=ddl)
    return changes


def _check_layout(store: Analytics, table: Table, name: str, engine: str | None) -> None:
    """An existing table of another layout is not converted: that needs the data moved
    (docs/operations.md), and a migration that guessed could lose or double it."""
    if engine is None:
        return
    if store.cluster is None:
        wanted, ok = f"{table.engine} (one server)", engine == table.engine
    elif name == table.name:
        wanted, ok = "Distributed", engine == "Distributed"
    elif store.cluster.REPLICATED:
        wanted, ok = f"Replicated{table.engine}", engine == f"Replicated{table.engine}"
    else:
        wanted, ok = table.engine, engine == table.engine
    if not ok:
        raise ClusterMismatch(
            f"ClickHouse table {store.database}.{name} is {engine}, but CLICKHOUSE_SYSTEM "
            f"{'has no CLUSTER' if store.cluster is None else f'CLUSTER {store.cluster.NAME}'} wants {wanted}: "
            "converting existing tables is not automated (see docs/operations.md)")
