"""import_rows writes a batch on a writer thread while it reads the next: progress (an import
job's checkpoint) must never cover a row that is not written, and a failed write stops it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from altcraft.domain.errors import Invalid
from altcraft.domain.importer import import_rows


class FakeProfiles:
    """Rows are {"email": ..., "line": n}; a row with "bad" fails validation."""

    def __init__(self, fail_on_batch: int | None = None):
        self.database = SimpleNamespace(key="email")
        self.preferred_batch = 3
        self.written: list[int] = []  # lines, appended when their batch's write returned
        self.batches = 0
        self.fail_on_batch = fail_on_batch

    def prepare(self, row, *, require_key):
        if "bad" in row:
            raise Invalid("email", "not a valid e-mail address")
        return dict(row)

    def upsert_prepared(self, rows, subscribe=None):
        self.batches += 1
        if self.batches == self.fail_on_batch:
            raise ConnectionError("store away")
        self.written.extend(r["line"] for r in rows)
        return ["inserted"] * len(rows)


def _rows(count: int, bad=()):
    for line in range(2, count + 2):
        row = {"email": f"u{line}@example.com", "line": line}
        if line in bad:
            row["bad"] = True
        yield line, row


def test_progress_covers_only_written_rows_and_bad_rows_up_to_its_line():
    profiles = FakeProfiles()
    seen = []

    def progress(report):
        written = set(profiles.written)
        good_lines = [line for line in range(2, report.last_line + 1) if line not in (5, 12)]
        assert all(line in written for line in good_lines), (report.last_line, sorted(written))
        assert report.inserted == len(profiles.written)
        assert all(e.line <= report.last_line for e in report.errors)
        assert report.rows == report.last_line - 1
        seen.append(report.last_line)

    report = import_rows(profiles, _rows(14, bad=(5, 12)), progress=progress)
    assert (report.rows, report.inserted, report.failed) == (14, 12, 2)
    assert sorted(profiles.written) == [line for line in range(2, 16) if line not in (5, 12)]
    assert seen[-1] == 15 and seen == sorted(seen)


def test_a_failed_write_raises_and_no_later_batch_is_written():
    profiles = FakeProfiles(fail_on_batch=2)
    with pytest.raises(ConnectionError):
        import_rows(profiles, _rows(20))
    assert profiles.written == [2, 3, 4] and profiles.batches == 2
