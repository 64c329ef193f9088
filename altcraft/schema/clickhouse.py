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

    def query(self, store: Analytics, where: str = "") -> str:
        return self.select.format(source=store.table(EVENTS.name), where=where)

    def create_sql(self, store: Analytics, name: str | None = None) -> str:
        return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {store.table(name or self.name)} "
                f"TO {store.table(self.target.name)} AS {self.query(store)}")


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
    engine="AggregatingMergeTree()",
    partition_by="toYYYYMM(hour)",
    order_by="(account_id, campaign_id, hour, kind, link_id, is_bot)",
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
    engine="AggregatingMergeTree()",
    partition_by="tuple()",
    order_by="(account_id, campaign_id, kind, link_id, is_bot)",
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
DERIVED: frozenset[str] = frozenset(v.name for v in VIEWS) | frozenset(v.target.name for v in VIEWS)

# The views come last, after their tables: whatever creates TABLES in order gets working
# views (migrate() leaves them to migrate_views(), which back-fills).
TABLES: tuple[Table | View, ...] = (EVENTS, AUDIT, CAMPAIGN_HOURLY, CAMPAIGN_PEOPLE, *VIEWS)


def migrate(store: Analytics, dry_run: bool = False) -> list[tuple[str, str]]:
    """Create missing database and tables, add missing columns. Returns (object, action)."""
    changes: list[tuple[str, str]] = []
    databases = {row[0] for row in store.execute("SELECT name FROM system.databases")}
    if store.database not in databases:
        changes.append((f"database {store.database}", "create"))
        if not dry_run:
            store.execute(f"CREATE DATABASE IF NOT EXISTS `{store.database}`")
    for table in TABLES:
        if isinstance(table, View):
            continue  # migrate_views, below
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
    changes += migrate_views(store, dry_run, exists=store.database in databases)
    return changes


# -- the views, and the back-fill of their tables ---------------------------------------------
PENDING = "__pending"  # suffix of a view that fills its table while the back-fill runs


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
                    store.execute(f"DROP TABLE IF EXISTS {store.table(pending)}")
            continue
        changes.append((f"view {view.name}", f"create, back-fill {view.target.name}"))
        if dry_run:
            continue
        store.execute(view.create_sql(store, name=pending))
        backfill(store, view)
        store.execute(view.create_sql(store))
        store.execute(f"DROP TABLE IF EXISTS {store.table(pending)}")
    return changes


def rebuild(store: Analytics) -> None:
    """Empties and refills the aggregate tables from `events` (after a restore replaced
    `events`): the tables and views are made if missing, as migrate makes them."""
    present = _existing(store)
    if EVENTS.name not in present:
        return  # nothing to build from: migrate makes the tables and views with `events`
    for view in VIEWS:
        if view.target.name not in present:
            store.execute(view.target.create_sql(store))
        else:
            store.execute(f"TRUNCATE TABLE {store.table(view.target.name)}")
    for name in present:
        if name.endswith(PENDING):
            store.execute(f"DROP TABLE IF EXISTS {store.table(name)}")
    migrate_views(store)  # a view that is missing: created and back-filled
    for view in VIEWS:
        if view.name in present:
            backfill(store, view)
