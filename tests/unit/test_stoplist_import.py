"""The stop list's file import: which lines are addresses, what is counted where."""

from __future__ import annotations

from altcraft.domain import stoplist as sl
from tests.lib.fake_hash import FakeStore


def test_first_column_of_a_line_or_csv_row():
    assert sl.first_column("a@example.com") == "a@example.com"
    assert sl.first_column('\ufeff"A@Example.com",Ann,1\r\n') == "A@Example.com"
    assert sl.first_column("b@example.com;x") == "b@example.com"
    assert sl.first_column("  \n") == ""


def test_import_counts_added_already_and_invalid_line_numbers(monkeypatch):
    monkeypatch.setattr(sl, "IMPORT_BATCH", 2)  # the counts hold across batches
    store = sl.StopList(FakeStore())
    assert store.add("old@example.com") and not store.add("OLD@example.com")
    lines = ["email", "new@example.com", "", "Old@Example.com", "nope@", "new@example.com", "x@example.org,1"]
    result = store.import_lines(lines)
    assert (result.added, result.already, result.invalid_lines) == (2, 2, [1, 5])
    assert store.blocked(["new@example.com", "x@example.org", "nope@"]) == {"new@example.com", "x@example.org"}
    assert store.client.hashes[sl.KEY][sl.contact_hash("old@example.com")] == "manual"  # its reason kept
