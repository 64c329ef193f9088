"""Profile import from CSV or JSON Lines.

Each row is validated and normalised on its own; a bad row (unparseable value, wrong type,
missing key, a key already seen earlier in the same file) is reported with its line number,
field and reason, and nothing of it is written. Good rows are upserted on the database's key
in batches. Re-importing the same file changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from altcraft.domain.errors import Invalid
from altcraft.domain.fields import ALTCRAFT_INPUT_NAMES
from altcraft.domain.profiles import Outcome, Profiles

Format = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


@dataclass
class ImportReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    interrupted: bool = False
    last_line: int = 0  # the last line read: every row up to it is written or reported

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def valid(self) -> int:
        return self.rows - self.failed

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "valid": self.valid, "inserted": self.inserted,
                "updated": self.updated, "unchanged": self.unchanged, "failed": self.failed,
                "dry_run": self.dry_run, "interrupted": self.interrupted,
                "errors": [e.as_dict() for e in self.errors]}


class FileError(Exception):
    """The file as a whole cannot be imported (nothing was written)."""


def detect_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise FileError(f"{path.name}: unknown format; use .csv or .jsonl (or --format)")


def _csv_reader(handle: io.TextIOBase) -> csv.DictReader:
    sample = handle.read(65536)
    handle.seek(0)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(handle, dialect=dialect)
    if not reader.fieldnames:
        raise FileError("the CSV file has no header line naming the fields")
    return reader


def columns(handle: io.TextIOBase, fmt: Format, sample_lines: int = 1000) -> list[str]:
    """The file's columns: a CSV's header, or the keys of the first JSON Lines objects in the
    order they first appear."""
    if fmt == "csv":
        return list(_csv_reader(handle).fieldnames or [])
    seen: dict[str, None] = {}
    for number, line in enumerate(handle, start=1):
        if number > sample_lines:
            break
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            seen.update(dict.fromkeys(record))
    if not seen:
        raise FileError("no JSON object in the first lines of the file")
    return list(seen)


def read_rows(handle: io.TextIOBase, fmt: Format, known_fields: set[str],
              mapping: dict[str, str] | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, row) pairs; a row is a dict, or an Invalid for a line that cannot be parsed.

    Without a mapping the columns must be the database's fields or Altcraft's system field
    names (`_fname`, `phones`...: Profiles.prepare translates them). A mapping renames each
    column to a field, or drops it when it maps to "" (the panel's column mapping)."""

    def renamed(record: dict[str, Any]) -> dict[str, Any]:
        if mapping is None:
            return record
        return {mapping.get(name, name): value for name, value in record.items() if mapping.get(name, name)}

    if fmt == "csv":
        reader = _csv_reader(handle)
        header = list(reader.fieldnames or [])
        known = set(known_fields) | ALTCRAFT_INPUT_NAMES
        unknown = [name for name in header if (mapping.get(name, name) if mapping else name)
                   and (mapping.get(name, name) if mapping else name) not in known]
        if unknown:
            raise FileError(f"columns that are not fields of the database: {', '.join(unknown)}")
        for record in reader:
            if None in record:  # more cells than header columns
                yield reader.line_num, Invalid("(row)", f"{len(header) + len(record[None])} cells, "
                                                        f"the header has {len(header)}")
                continue
            yield reader.line_num, renamed(record)
    else:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, Invalid("(row)", f"not valid JSON: {exc.msg}")
                continue
            if not isinstance(record, dict):
                yield number, Invalid("(row)", "a line must hold a JSON object")
                continue
            yield number, renamed(record)


def import_rows(profiles: Profiles, rows: Iterable[tuple[int, Any]], *, dry_run: bool = False,
                batch_size: int | None = None, unit: str = "line",
                subscribe: tuple[int, str] | None = None,
                progress: Callable[[ImportReport], None] | None = None,
                skip_through: int = 0) -> ImportReport:
    """Validates and upserts the rows. Rows at or before line `skip_through` (a resumed job's
    checkpoint) are only validated, so that a later duplicate of their key is still found:
    they are neither written nor counted nor reported again.

    One batch is written on a writer thread while the next one is read and validated (the
    store's answer and our parsing overlap; validation is most of our own time). Batches are
    written one at a time, in file order. `progress` is called on the calling thread after
    each batch is written, with the report as it stood when that batch was cut (rows, last
    line, bad rows up to it) and the outcomes written so far: a checkpoint taken from it never
    covers a row that is not written yet."""
    report = ImportReport(dry_run=dry_run)
    batch_size = batch_size or profiles.preferred_batch
    key = profiles.database.key
    first_seen: dict[Any, int] = {}
    batch: list[dict[str, Any]] = []
    writer = ThreadPoolExecutor(1, thread_name_prefix="import-writer") if not dry_run else None
    # the batch being written and the report's (rows, last_line, bad rows) when it was cut
    writing: tuple[Future[list[Outcome]], tuple[int, int, int]] | None = None

    reported = [(0, 0, 0)]  # the state the last progress call was given

    def count(outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            setattr(report, outcome, getattr(report, outcome) + 1)

    def written() -> None:
        """Waits for the batch in flight; counts its outcomes and reports progress."""
        nonlocal writing
        if writing is None:
            return
        future, (rows_then, line_then, errors_then) = writing
        outcomes = future.result()  # a failed write raises here; no later batch is sent
        writing = None
        count(outcomes)
        if progress:
            progress(replace(report, rows=rows_then, last_line=line_then, errors=report.errors[:errors_then]))
            reported[0] = (rows_then, line_then, errors_then)

    def flush() -> None:
        nonlocal batch, writing
        if writer is None:  # dry run: nothing is written
            batch.clear()
            if progress:
                progress(report)
            return
        written()
        if batch:
            writing = (writer.submit(profiles.upsert_prepared, batch, subscribe),
                       (report.rows, report.last_line, len(report.errors)))
            batch = []

    try:
        for line, row in rows:
            replay = bool(skip_through) and line <= skip_through  # the API counts rows from 0
            if not replay:
                report.rows += 1
                report.last_line = line
            try:
                if isinstance(row, Invalid):
                    raise row
                clean = profiles.prepare(row, require_key=True)
                if clean[key] in first_seen:
                    raise Invalid(key, f"duplicate key in the file (first at {unit} {first_seen[clean[key]]})")
            except Invalid as exc:
                if not replay:
                    report.errors.append(RowError(line, exc.field, exc.reason))
                continue
            first_seen[clean[key]] = line
            if replay:
                continue
            batch.append(clean)
            if len(batch) >= batch_size:
                flush()
        flush()
        written()
        if progress and writer is not None and reported[0] != (report.rows, report.last_line, len(report.errors)):
            progress(report)  # bad rows after the last batch: the end is a checkpoint too
    except KeyboardInterrupt:
        # rows of the batch in hand are dropped whole; the batch in flight is waited for and
        # counted, so what was written stays consistent and reported
        report.interrupted = True
        if writing is not None:
            count(writing[0].result())
            writing = None
    finally:
        if writer is not None:
            writer.shutdown(wait=True)  # never return (or raise) with a write still running
    return report


def import_file(profiles: Profiles, path: Path, fmt: Format | None = None, **options: Any) -> ImportReport:
    fmt = fmt or detect_format(path)
    known = set(profiles.database.fields)
    with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as handle:
        return import_rows(profiles, read_rows(handle, fmt, known), **options)
