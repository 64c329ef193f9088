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


# -- campaign report aggregates (domain/reports.py) -----------------------------------------
# A campaign report must count every event once, yet reading a million events' ids per page
# view takes seconds. Two AggregatingMergeTree tables hold, per group, the SET of event ids
# (uniqExactState) and of profile ids: a redelivered copy of an event adds an id already in
# its set, so the union (uniqExactMerge, and the background merges) stays exact where a
# SummingMergeTree's count() would count the copy twice. For the same reason refilling a
# table from `events` (the back-fill below, a restore) never doubles anything.
# Materialised views fill them from every INSERT into `events`.


@dataclass(frozen=True)
class Aggregate(Table):
    """A table with SETTINGS: small index granules, so that a campaign's query deserialises
    its own states, not those of the neighbours sharing a granule."""

    settings: str = ""

    def create_sql(self, store: Analytics) -> str:
        sql = super().create_sql(store)
        return f"{sql}\nSETTINGS {self.settings}" if self.settings else sql


@dataclass(frozen=True)
class View:
    """A materialised view from `events` into an aggregate table. `select` names its
    source as {source} and has {where} before its GROUP BY (the back-fill's partition)."""

    name: str
    target: Aggregate
    select: str

    def query(self, store: Analytics, where: str = "", source: str | None = None) -> str:
        return self.select.format(source=store.table(source or EVENTS.name), where=where)

    def create_sql(self, store: Analytics, name: str | None = None) -> str:
        """On a cluster the view watches each server's local `events` (an INSERT through the
        Distributed table lands in a local one) and fills the local aggregate table, which
        is Replicated too: a view does not fire for parts a replica fetches, so the
        aggregate's own replication carries them."""
        if store.cluster is None:
            return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {store.table(name or self.name)} "
                    f"TO {store.table(self.target.name)} AS {self.query(store)}")
        return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {store.table(name or self.name)}{on_cluster(store)} "
                f"TO {store.table(self.target.local_name())} AS {self.query(store, source=EVENTS.local_name())}")


# Per campaign and UTC hour (the report's timeline): the event ids of each (kind, link,
# is_bot). An event id lies in exactly one group (a redelivered copy is the same event, and
# botfilter decides a redelivered batch the same), so per-kind and per-link totals are sums
# of the groups' counts. The hour is whole UTC hours since the epoch, like the report's.
CAMPAIGN_HOURLY = Aggregate(
    name="campaign_hourly",
    columns=(
        Column("account_id", "UInt32"),
        Column("campaign_id", "UInt64"),
        Column("hour", "DateTime"),
        Column("kind", "String", low_cardinality=True),
        Column("link_id", "UInt32"),
        Column("is_bot", "UInt8"),
        Column("events", "AggregateFunction(uniqExact, UUID)"),
        Column("url", "AggregateFunction(any, String)"),
    ),
    engine="AggregatingMergeTree",
    partition_by="toYYYYMM(hour)",
    order_by="(account_id, campaign_id, hour, kind, link_id, is_bot)",
    sharding_key="cityHash64(campaign_id)",
    settings="index_granularity = 256",
)

# Per campaign, no time: the profile ids of each (kind, link, is_bot), for the unique
# counts (openers, clickers, sent...), which are unions across hours and kinds.
CAMPAIGN_PEOPLE = Aggregate(
    name="campaign_people",
    columns=(
        Column("account_id", "UInt32"),
        Column("campaign_id", "UInt64"),
        Column("kind", "String", low_cardinality=True),
        Column("link_id", "UInt32"),
        Column("is_bot", "UInt8"),
        Column("profiles", "AggregateFunction(uniqExact, String)"),
        # a random number per insert, summed: changes with every INSERT that touches the
        # campaign, never with a merge - the report's version (domain/reports.py)
        Column("nonce", "AggregateFunction(sum, UInt64)"),
    ),
    engine="AggregatingMergeTree",
    partition_by="tuple()",
    order_by="(account_id, campaign_id, kind, link_id, is_bot)",
    sharding_key="cityHash64(campaign_id)",
    settings="index_granularity = 16",
)

VIEWS: tuple[View, ...] = (
    View("campaign_hourly_mv", CAMPAIGN_HOURLY,
         "SELECT account_id, campaign_id, toDateTime(intDiv(toUInt32(event_time), 3600) * 3600) AS hour, "
         "kind, link_id, is_bot, uniqExactState(event_id) AS events, anyState(url) AS url "
         "FROM {source}{where} GROUP BY account_id, campaign_id, hour, kind, link_id, is_bot"),
    View("campaign_people_mv", CAMPAIGN_PEOPLE,
         "SELECT account_id, campaign_id, kind, link_id, is_bot, uniqExactState(profile_id) AS profiles, "
         "sumState(rand64()) AS nonce FROM {source}{where} GROUP BY account_id, campaign_id, kind, link_id, is_bot"),
)

# Rebuilt from `events`, never dumped: a backup leaves them out and a restore refills them
# (backup/clickhouse.py); AggregateFunction states have no portable text form.
DERIVED: frozenset[str] = (frozenset(v.name for v in VIEWS) | frozenset(v.target.name for v in VIEWS)
                            | frozenset(v.target.local_name() for v in VIEWS))

# The views come last, after their tables: whatever creates TABLES in order gets working
# views (migrate() leaves them to migrate_views(), which back-fills).
TABLES: tuple[Table | View, ...] = (EVENTS, AUDIT, CAMPAIGN_HOURLY, CAMPAIGN_PEOPLE, *VIEWS)


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
        if isinstance(table, View):
            continue  # migrate_views, below
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
    changes += migrate_views(store, dry_run, exists=store.database in databases)
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


# -- the views, and the back-fill of their tables ---------------------------------------------
PENDING = "__pending"  # suffix of a view that fills its table while the back-fill runs


def _ddl(store: Analytics) -> dict | None:
    return {"distributed_ddl_task_timeout": DDL_TIMEOUT} if store.cluster is not None else None


def _existing(store: Analytics) -> set[str]:
    return {r[0] for r in store.execute("SELECT name FROM system.tables WHERE database = %(db)s",
                                        {"db": store.database})}


def backfill(store: Analytics, view: View) -> int:
    """Adds every stored event to the view's table, one month of `events` at a time (the
    GROUP BY holds a month's ids in memory). Idempotent: ids already there are a union's
    no-op. Returns the months read."""
    months = [r[0] for r in store.execute(
        f"SELECT DISTINCT toYYYYMM(event_date) FROM {store.table(EVENTS.name)} ORDER BY 1")]
    for month in months:
        store.execute(f"INSERT INTO {store.table(view.target.name)} "
                      + view.query(store, where=f" WHERE toYYYYMM(event_date) = {int(month)}"))
    return len(months)


def migrate_views(store: Analytics, dry_run: bool = False, exists: bool = True) -> list[tuple[str, str]]:
    """Creates a missing view and back-fills its table from `events`, without a gap and
    safe to interrupt: a `<view>__pending` view catches the events inserted while the
    back-fill reads, the real view is created after the back-fill, then the pending one is
    dropped (for a moment both fill the table: a union, harmless). A run killed before the
    real view exists leaves it missing, so the next run back-fills again."""
    changes: list[tuple[str, str]] = []
    present = _existing(store) if exists else set()
    for view in VIEWS:
        pending = view.name + PENDING
        if view.name in present:
            if pending in present:  # killed between creating the view and dropping this one
                changes.append((f"view {pending}", "drop"))
                if not dry_run:
                    store.execute(f"DROP TABLE IF EXISTS {store.table(pending)}{on_cluster(store)}", settings=_ddl(store))
            continue
        changes.append((f"view {view.name}", f"create, back-fill {view.target.name}"))
        if dry_run:
            continue
        store.execute(view.create_sql(store, name=pending), settings=_ddl(store))
        backfill(store, view)
        store.execute(view.create_sql(store), settings=_ddl(store))
        store.execute(f"DROP TABLE IF EXISTS {store.table(pending)}{on_cluster(store)}", settings=_ddl(store))
    return changes


def rebuild(store: Analytics) -> None:
    """Empties and refills the aggregate tables from `events` (after a restore replaced
    `events`): the tables and views are made if missing, as migrate makes them."""
    present = _existing(store)
    if EVENTS.name not in present:
        return  # nothing to build from: migrate makes the tables and views with `events`
    if any(view.target.name not in present for view in VIEWS):
        migrate(store)  # the missing ones made (both layouts on a cluster) and back-filled
        present = _existing(store)
    for view in VIEWS:
        target = view.target.name if store.cluster is None else view.target.local_name()
        store.execute(f"TRUNCATE TABLE {store.table(target)}{on_cluster(store)}", settings=_ddl(store))
    for name in present:
        if name.endswith(PENDING):
            store.execute(f"DROP TABLE IF EXISTS {store.table(name)}{on_cluster(store)}", settings=_ddl(store))
    migrate_views(store)  # a view that is missing: created and back-filled
    for view in VIEWS:
        if view.name in present:
            backfill(store, view)