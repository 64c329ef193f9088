"""ClickHouse tables: the schema (SHOW CREATE TABLE) and the data per partition in
TabSeparated, the text format every ClickHouse release reads (18.16 and current:
`clickhouse-client --query "INSERT INTO t FORMAT TabSeparated" < file`).

Tables of the Replacing/Collapsing/Summing/Aggregating families are read with FINAL, so
the dump holds the table's logical content: a restored table then counts the same rows
whether or not the original had merged its duplicates away. Column types are checked
before anything is written; a type this module cannot write back is an error naming the
table and column, never a dump that cannot be restored.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from altcraft.backup.digest import SumDigest
from altcraft.config import ClickHouseSystem
from altcraft.schema.clickhouse import DERIVED, PENDING, rebuild
from altcraft.stores.analytics import Analytics

Tick = Callable[[str, int], None]
BATCH = 10_000
_FINAL_ENGINES = ("Replacing", "Collapsing", "VersionedCollapsing", "Summing", "Aggregating", "Graphite")
_DATA_ENGINES = ("MergeTree", "Log", "TinyLog", "StripeLog", "Memory")
_INT = re.compile(r"^U?Int(8|16|32|64|128|256)$")
_ENUM = re.compile(r"^Enum(8|16)\(")


# -- the TabSeparated text of one value, and back ------------------------------------------
_ESCAPES = {ord("\\"): "\\\\", ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r", 0: "\\0",
            ord("\b"): "\\b", ord("\f"): "\\f"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "0": "\0", "b": "\b", "f": "\f",
              "'": "'", "a": "\a", "v": "\v"}


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_UNESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _inner(kind: str, wrapper: str) -> str | None:
    prefix = wrapper + "("
    return kind[len(prefix):-1] if kind.startswith(prefix) and kind.endswith(")") else None


def supported(kind: str) -> bool:
    for wrapper in ("Nullable", "LowCardinality"):
        inner = _inner(kind, wrapper)
        if inner is not None:
            return supported(inner)
    return bool(kind in ("String", "UUID", "Date", "DateTime", "Float32", "Float64")
                or _INT.match(kind) or _ENUM.match(kind) or kind.startswith("FixedString(")
                or kind.startswith("Decimal"))


def _base(kind: str) -> tuple[str, bool]:
    """The type inside LowCardinality/Nullable, and whether it is Nullable."""
    nullable = False
    while True:
        inner = _inner(kind, "Nullable")
        if inner is not None:
            kind, nullable = inner, True
            continue
        inner = _inner(kind, "LowCardinality")
        if inner is None:
            return kind, nullable
        kind = inner


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    return _escape(value) if isinstance(value, str) else str(value)


@functools.lru_cache(maxsize=None)
def formatter(kind: str) -> Callable[[Any], str]:
    """The function writing one value of `kind` as TabSeparated text; built once per type,
    since a dump calls it for every field of every row."""
    base, nullable = _base(kind)
    if base == "DateTime":
        fmt: Callable[[Any], str] = lambda value: value.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    elif base == "Date":
        fmt = lambda value: value.isoformat()  # noqa: E731
    elif base.startswith("Float"):
        fmt = lambda value: repr(float(value))  # noqa: E731
    elif _INT.match(base):
        fmt = str
    else:
        fmt = _text
    if nullable:
        return lambda value: "\\N" if value is None else fmt(value)
    return fmt


def _datetime(text: str) -> dt.datetime:
    # fromisoformat is several times faster than strptime; the length check keeps it as
    # strict as the one format the dump writes (no fractions, no zone)
    if len(text) != 19 or text[10] != " ":
        raise ValueError(f"not a DateTime: {text!r}")
    return dt.datetime.fromisoformat(text)


def _date(text: str) -> dt.date:
    if len(text) != 10:
        raise ValueError(f"not a Date: {text!r}")
    return dt.date.fromisoformat(text)


def _bytes(text: str) -> bytes:
    return _unescape(text).encode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=None)
def parser(kind: str) -> Callable[[str], Any]:
    """The function reading one TabSeparated field of `kind` back; built once per type."""
    base, nullable = _base(kind)
    if _INT.match(base):
        parse: Callable[[str], Any] = int
    elif base.startswith("Float"):
        parse = float
    elif base == "UUID":
        parse = uuid.UUID
    elif base == "Date":
        parse = _date
    elif base == "DateTime":
        parse = _datetime
    elif base.startswith("Decimal"):
        parse = decimal.Decimal
    elif base == "String" or base.startswith("FixedString("):
        parse = _bytes
    else:
        parse = _unescape  # Enum: its name
    if nullable:
        return lambda text: None if text == "\\N" else parse(text)
    return parse


def to_text(kind: str, value: Any) -> str:
    return formatter(kind)(value)


def from_text(kind: str, text: str) -> Any:
    return parser(kind)(text)


# -- tables ---------------------------------------------------------------------------------
def _quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _partition_expr(create: str) -> str | None:
    match = re.search(r"PARTITION BY (.+?)\s+(?:ORDER BY|PRIMARY KEY|SAMPLE BY|SETTINGS|TTL)\b", create)
    if not match:
        return None
    expr = match.group(1).strip()
    return None if expr in ("tuple()", "") else expr


def _columns(store: Analytics, table: str) -> list[tuple[str, str]]:
    rows = store.execute(f"DESCRIBE TABLE {store.table(table)}")
    # MATERIALIZED and ALIAS columns are computed, not stored: SELECT * leaves them out too
    return [(r[0], r[1]) for r in rows if (r[2] if len(r) > 2 else "") not in ("MATERIALIZED", "ALIAS")]


def _select(store: Analytics, table: str, engine: str, columns: list[tuple[str, str]], where: str = "") -> str:
    final = " FINAL" if any(engine.startswith(f) for f in _FINAL_ENGINES) else ""
    cols = ", ".join(_quote(c) for c, _ in columns)
    return f"SELECT {cols} FROM {store.table(table)}{final}{where}"


def _rows(store: Analytics, sql: str) -> Iterator[tuple]:
    yield from store._client.execute_iter(sql, settings={"strings_as_bytes": True, "max_block_size": BATCH})


def _line(formats: list[Callable[[Any], str]], row: tuple) -> str:
    return "\t".join([f(value) for f, value in zip(formats, row)]) + "\n"


def _tables(store: Analytics) -> list[tuple[str, str]]:
    """The tables and views a backup holds: not the report aggregates and their views,
    which are rebuilt from `events` after a restore (schema/clickhouse.py, DERIVED)."""
    return [(r[0], r[1]) for r in store.execute(
        "SELECT name, engine FROM system.tables WHERE database = %(db)s ORDER BY name", {"db": store.database})
        if r[0] not in DERIVED and not r[0].endswith(PENDING)]


def dump(settings: ClickHouseSystem, outdir: Path, tick: Tick) -> dict[str, Any]:
    """Writes `<table>.sql`, `<table>.columns.json` and `<table>/<partition>.tsv` per table."""
    store = Analytics(settings)
    try:
        return _dump(store, outdir, tick)
    finally:
        store.close()


def _dump(store: Analytics, outdir: Path, tick: Tick) -> dict[str, Any]:
    outdir.mkdir(parents=True, exist_ok=True)
    tables: dict[str, Any] = {}
    for table, engine in _tables(store):
        create = store.execute(f"SHOW CREATE TABLE {store.table(table)}")[0][0]
        (outdir / f"{table}.sql").write_text(create + "\n")
        entry: dict[str, Any] = {"engine": engine}
        tables[table] = entry
        if not any(engine.endswith(e) for e in _DATA_ENGINES):
            entry["data"] = False  # a view or a distributed table: schema only
            continue
        columns = _columns(store, table)
        bad = [f"{c} {k}" for c, k in columns if not supported(k)]
        if bad:
            raise ValueError(f"table {table}: column type(s) the backup cannot restore yet: {', '.join(bad)}")
        (outdir / f"{table}.columns.json").write_text(json.dumps(columns) + "\n")
        expr = _partition_expr(create) if "MergeTree" in engine else None
        partitions = ["all"]
        if expr:
            partitions = [r[0] for r in store.execute(
                "SELECT DISTINCT partition FROM system.parts WHERE database = %(db)s AND table = %(t)s "
                "AND active ORDER BY partition", {"db": store.database, "t": table})]
        (outdir / table).mkdir(exist_ok=True)
        formats = [formatter(kind) for _, kind in columns]
        total = SumDigest()
        parts: dict[str, Any] = {}
        for index, partition in enumerate(partitions):
            where = f" WHERE ({expr}) = {partition}" if expr else ""
            digest = SumDigest()
            # the file is named by position: a partition literal may hold any character
            name = f"{index:05d}.tsv"
            with open(outdir / table / name, "w", encoding="utf-8", errors="surrogateescape") as f:
                for row in _rows(store, _select(store, table, engine, columns, where)):
                    line = _line(formats, row)
                    f.write(line)
                    encoded = line.encode("utf-8", "surrogateescape")
                    digest.add(encoded)
                    total.add(encoded)
                    if digest.count % BATCH == 0:
                        tick(f"clickhouse {table}", BATCH)
            tick(f"clickhouse {table}", digest.count % BATCH)
            parts[name] = {"partition": partition, **digest.as_dict()}
        entry.update({"data": True, "partition_by": expr, "partitions": parts, **total.as_dict()})
    # DateTime text is the server's wall-clock time: restore converts it when the target
    # server runs in another time zone
    timezone = store.execute("SELECT timezone()")[0][0]
    return {"database": store.database, "server_timezone": timezone, "tables": tables}


def check_readable(outdir: Path, section: dict[str, Any]) -> list[tuple[Path, str]]:
    problems: list[tuple[Path, str]] = []
    for table, entry in section["tables"].items():
        if not (outdir / f"{table}.sql").read_text().strip().startswith("CREATE"):
            problems.append((outdir / f"{table}.sql", "not a CREATE statement"))
        if not entry.get("data"):
            continue
        columns = json.loads((outdir / f"{table}.columns.json").read_text())
        parse = [parser(kind) for _, kind in columns]
        for name, expected in entry["partitions"].items():
            path = outdir / table / name
            digest = SumDigest()
            try:
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    for number, line in enumerate(f, 1):
                        fields = line.rstrip("\n").split("\t")
                        if len(fields) != len(columns) or not line.endswith("\n"):
                            raise ValueError(f"line {number}: {len(fields)} fields, {len(columns)} columns")
                        for read, text in zip(parse, fields):
                            read(text)
                        digest.add(line.encode("utf-8", "surrogateescape"))
            except Exception as exc:  # noqa: BLE001 - any parse failure is a damaged dump
                problems.append((path, f"not readable: {exc}"))
                continue
            if digest.count != expected["count"] or digest.hexdigest() != expected["checksum"]:
                problems.append((path, f"holds {digest.count} rows, the manifest says {expected['count']}"))
    return problems


def _retarget(create: str, store: Analytics, table: str) -> str:
    """The saved CREATE, aimed at this configuration's database."""
    return re.sub(r"^(CREATE\s+(?:TABLE|VIEW|MATERIALIZED VIEW))\s+\S+", lambda m: f"{m.group(1)} {store.table(table)}",
                  create.strip(), count=1)


def _zone_shift(source: str | None, target: str) -> Callable[[Any], Any] | None:
    """A converter of naive DateTime values from the source server's zone to the target's."""
    if not source or source == target:
        return None
    from zoneinfo import ZoneInfo

    src, dst = ZoneInfo(source), ZoneInfo(target)
    return lambda value: value.replace(tzinfo=src).astimezone(dst).replace(tzinfo=None)


def _converters(columns: list[tuple[str, str]], shift: Callable[[Any], Any] | None) -> list[Callable[[str], Any]]:
    def make(kind: str) -> Callable[[str], Any]:
        parse = parser(kind)
        if shift is not None and _base(kind)[0] == "DateTime":
            return lambda text: None if text == "\\N" else shift(parse(text))
        return parse
    return [make(kind) for _, kind in columns]


def _swap(store: Analytics, table: str, staging: str) -> None:
    exists = store.execute("SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
                           {"db": store.database, "t": table})[0][0]
    if exists:
        replaced = f"{table}__replaced"
        store.execute(f"DROP TABLE IF EXISTS {store.table(replaced)}")
        store.execute(f"RENAME TABLE {store.table(table)} TO {store.table(replaced)}, "
                      f"{store.table(staging)} TO {store.table(table)}")
        store.execute(f"DROP TABLE {store.table(replaced)}")
    else:
        store.execute(f"RENAME TABLE {store.table(staging)} TO {store.table(table)}")


def restore(settings: ClickHouseSystem, outdir: Path, section: dict[str, Any], tick: Tick) -> None:
    store = Analytics(settings)
    try:
        store.execute(f"CREATE DATABASE IF NOT EXISTS {_quote(store.database)}")
        shift = _zone_shift(section.get("server_timezone"), store.execute("SELECT timezone()")[0][0])
        data_first = sorted(section["tables"].items(), key=lambda item: not item[1].get("data"))
        for table, entry in data_first:
            if not entry.get("data"):
                store.execute(f"DROP TABLE IF EXISTS {store.table(table)}")
                store.execute(_retarget((outdir / f"{table}.sql").read_text(), store, table))
                continue
            # loaded under a staging name, then swapped in: a load that fails leaves the
            # table as it was
            staging = f"{table}__restoring"
            store.execute(f"DROP TABLE IF EXISTS {store.table(staging)}")
            store.execute(_retarget((outdir / f"{table}.sql").read_text(), store, staging))
            columns = json.loads((outdir / f"{table}.columns.json").read_text())
            names = [c for c, _ in columns]
            convert = _converters(columns, shift)
            for name in entry["partitions"]:
                batch: list[list[Any]] = []
                with open(outdir / table / name, encoding="utf-8", errors="surrogateescape") as f:
                    for line in f:
                        fields = line.rstrip("\n").split("\t")
                        batch.append([f(text) for f, text in zip(convert, fields)])
                        if len(batch) >= BATCH:
                            store.insert(staging, names, batch)
                            tick(f"clickhouse {table}", len(batch))
                            batch = []
                if batch:
                    store.insert(staging, names, batch)
                    tick(f"clickhouse {table}", len(batch))
            _swap(store, table, staging)
        rebuild(store)  # the report aggregates, from the restored events
    finally:
        store.close()


def digest_tables(settings: ClickHouseSystem) -> dict[str, Any]:
    """{table: {count, checksum}} of the live tables, computed as dump computes them."""
    store = Analytics(settings)
    try:
        result = {}
        for table, engine in _tables(store):
            if not any(engine.endswith(e) for e in _DATA_ENGINES):
                continue
            columns = _columns(store, table)
            formats = [formatter(kind) for _, kind in columns]
            digest = SumDigest()
            for row in _rows(store, _select(store, table, engine, columns)):
                digest.add(_line(formats, row).encode("utf-8", "surrogateescape"))
            result[table] = digest.as_dict()
        return result
    finally:
        store.close()
