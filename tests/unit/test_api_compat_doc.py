"""docs/api-compatibility.md against the API registry (#16).

The page tells integrators, method by method, whether a client written from Altcraft's guide
works here. A method served without a row, a row claiming a method is served that is not (or
the reverse), a row marked compatible that no test in tests/compat/ proves, or counts that no
longer add up would make the page lie, so each fails here.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import pytest

from altcraft.services.apiv11 import api

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api-compatibility.md"
COMPAT_TESTS = ROOT / "tests" / "compat"
COMPATIBLE = ("compatible", "compatible with differences")
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
        if status_of(row) not in (NOT_SERVED, "project addition", "compatible"):
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


def proven_methods(folder: Path = COMPAT_TESTS) -> dict[str, list[str]]:
    """Method -> the tests in `folder` whose `@covers(...)` (tests/lib/compat.py) names it.

    Read from the source, so this unit test needs no server; the tests themselves run (against
    the real API) in the same suite, and a failing one fails it there.
    """
    proven: dict[str, list[str]] = {}
    for path in sorted(folder.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "covers":
                    for arg in decorator.args:
                        assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), \
                            f"{path.name}:{node.lineno}: covers() takes method paths as string literals"
                        proven.setdefault(normal(arg.value), []).append(f"{path.name}::{node.name}")
    return proven


def test_a_compatible_row_has_a_test_in_tests_compat(rows, served):
    proven = proven_methods()
    unproven = [f"line {row['line']} {row['path']}" for row in rows
                if status_of(row) in COMPATIBLE and normal(row["path"]) not in proven]
    assert not unproven, "marked compatible without a test in tests/compat/ naming the method:\n" + \
        "\n".join(unproven)
    documented = {normal(row["path"]) for row in rows}
    assert not sorted(set(proven) - documented), "tests/compat names a method with no row"


def test_the_guard_sees_a_missing_test(tmp_path):
    (tmp_path / "test_x.py").write_text("@covers('profiles/add', 'a/b/')\ndef test_one(): pass\n"
                                        "def test_two(): pass\n")
    assert proven_methods(tmp_path) == {"profiles/add": ["test_x.py::test_one"], "a/b": ["test_x.py::test_one"]}
    assert proven_methods(tmp_path / "empty") == {}
