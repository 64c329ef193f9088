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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from altcraft.domain.errors import Invalid
from altcraft.domain.profiles import Profiles

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


def read_rows(handle: io.TextIOBase, fmt: Format, known_fields: set[str]) -> Iterator[tuple[int, Any]]:
    """(line number, row) pairs; a row is a dict, or an Invalid for a line that cannot be parsed."""
    if fmt == "csv":
        sample = handle.read(65536)
        handle.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(handle, dialect=dialect)
        header = reader.fieldnames or []
        unknown = [name for name in header if name not in known_fields]
        if not header:
            raise FileError("the CSV file has no header line naming the fields")
        if unknown:
            raise FileError(f"columns that are not fields of the database: {', '.join(unknown)}")
        for record in reader:
            if None in record:  # more cells than header columns
                yield reader.line_num, Invalid("(row)", f"{len(header) + len(record[None])} cells, "
                                                        f"the header has {len(header)}")
                continue
            yield reader.line_num, record
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
            yield number, record


def import_rows(profiles: Profiles, rows: Iterable[tuple[int, Any]], *, dry_run: bool = False,
                batch_size: int | None = None, unit: str = "line",
                subscribe: tuple[int, str] | None = None,
                progress: Callable[[ImportReport], None] | None = None) -> ImportReport:
    report = ImportReport(dry_run=dry_run)
    batch_size = batch_size or profiles.preferred_batch
    key = profiles.database.key
    first_seen: dict[Any, int] = {}
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch and not dry_run:
            for outcome in profiles.upsert_prepared(batch, subscribe):
                setattr(report, outcome, getattr(report, outcome) + 1)
        batch.clear()
        if progress:
            progress(report)

    try:
        for line, row in rows:
            report.rows += 1
            try:
                if isinstance(row, Invalid):
                    raise row
                clean = profiles.prepare(row, require_key=True)
                if clean[key] in first_seen:
                    raise Invalid(key, f"duplicate key in the file (first at {unit} {first_seen[clean[key]]})")
            except Invalid as exc:
                report.errors.append(RowError(line, exc.field, exc.reason))
                continue
            first_seen[clean[key]] = line
            batch.append(clean)
            if len(batch) >= batch_size:
                flush()
        flush()
    except KeyboardInterrupt:
        # rows of the batch in hand are dropped whole; what was written stays consistent
        report.interrupted = True
    return report


def import_file(profiles: Profiles, path: Path, fmt: Format | None = None, **options: Any) -> ImportReport:
    fmt = fmt or detect_format(path)
    known = set(profiles.database.fields)
    with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as handle:
        return import_rows(profiles, read_rows(handle, fmt, known), **options)
