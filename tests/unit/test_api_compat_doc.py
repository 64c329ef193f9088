"""docs/api-compatibility.md against the API registry (#16).

The page tells integrators, method by method, whether a client written from Altcraft's guide
works here. A method served without a row, a row claiming a method is served that is not (or
the reverse), or counts that no longer add up would make the page lie, so each fails here.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from altcraft.services.apiv11 import api

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-compatibility.md"
HEADER = ["method", "documented parameters", "documented answer", "source", "status"]
# longest first: "compatible" is a prefix of "compatible with differences"
STATUSES = ("compatible with differences:", "served, incompatible:", "served, unverified:",
            "not implemented", "project addition", "compatible")
NOT_SERVED = "not implemented"


def _cells(line: str) -> list[str]:
    # a cell may hold an escaped pipe (`and\|or`); only bare pipes separate cells
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def parse(text: str) -> list[dict[str, str]]:
    """The rows of every method table (tables whose header is HEADER), in order."""
    rows: list[dict[str, str]] = []
    in_table = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells == HEADER:
            in_table = True
            continue
        if not in_table or set("".join(cells)) <= set("-: "):
            continue
        assert len(cells) == len(HEADER), f"line {number}: {len(cells)} cells, expected {len(HEADER)}"
        match = re.fullmatch(r"`([^`\s]+)`", cells[0])
        assert match, f"line {number}: the method cell must be one `path`, got {cells[0]!r}"
        rows.append({"path": match.group(1), "line": str(number), **dict(zip(HEADER[1:], cells[1:]))})
    return rows


def status_of(row: dict[str, str]) -> str:
    for status in STATUSES:
        if row["status"].startswith(status):
            return status.rstrip(":")
    raise AssertionError(f"line {row['line']}: unknown status {row['status']!r}")


def normal(path: str) -> str:
    return path.strip("/")  # the dispatcher serves a path with or without its trailing slash


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    found = parse(DOC.read_text(encoding="utf-8"))
    assert len(found) >= len(api.endpoints), "the parser found fewer rows than served methods"
    return found


@pytest.fixture(scope="module")
def served() -> set[str]:
    return {normal(path) for path in api.endpoints}


def test_every_served_method_has_a_row(rows, served):
    documented = {normal(row["path"]) for row in rows}
    missing = sorted(served - documented)
    assert not missing, f"served but without a row in {DOC.name}: {missing}"


def test_a_row_says_served_exactly_when_the_method_is_served(rows, served):
    wrong = []
    for row in rows:
        is_served = normal(row["path"]) in served
        if (status_of(row) == NOT_SERVED) == is_served:
            wrong.append(f"line {row['line']} {row['path']}: {status_of(row)!r} but "
                         f"{'served' if is_served else 'not served'}")
    assert not wrong, "\n".join(wrong)


def test_each_method_has_one_row_a_status_and_a_source(rows):
    counts = Counter(normal(row["path"]) for row in rows)
    assert not [p for p, n in counts.items() if n > 1], "a method has more than one row"
    for row in rows:
        status_of(row)
        assert "https://" in row["source"] or "docs/api.md" in row["source"], \
            f"line {row['line']} {row['path']}: no source page"
        if status_of(row) != NOT_SERVED and status_of(row) != "project addition":
            assert row["status"].split(":", 1)[1].strip(), \
                f"line {row['line']} {row['path']}: the status must name its differences"


def test_the_counts_paragraph_adds_up(rows, served):
    text = DOC.read_text(encoding="utf-8")
    counts = Counter(status_of(row) for row in rows)
    additions = counts["project addition"]
    expected = (f"{len(rows)} rows: {additions} project additions and {len(rows) - additions} "
                f"Altcraft methods, of which {counts['compatible']} compatible, "
                f"{counts['compatible with differences']} compatible with differences, "
                f"{counts['served, incompatible']} served but incompatible, "
                f"{counts['served, unverified']} served but unverified")
    flat = " ".join(text.split())
    assert expected in flat, f"the Counts section should say: {expected}"
    assert f"{counts[NOT_SERVED]} not implemented." in flat
    assert f"All {len(served)} paths this platform serves have a row" in flat
