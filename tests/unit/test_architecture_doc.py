"""docs/architecture.md stays true: every module of the package is in its tree, nothing in the
tree is gone, and no ready process is described as planned."""

from __future__ import annotations

import re
from pathlib import Path

from altcraft import registry

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "altcraft"
_ENTRY = re.compile(r"^(\s*)(\S+)")
_MODULE = re.compile(r"\b([a-z_][a-z0-9_]*\.py)\b")


def package_tree(text: str) -> list[str]:
    """The code block under '## The package': the first token of an entry line is a folder
    (ending in /) or a module; deeper indentation nests; a line indented to the description
    column continues the entry before it; a folder's description may list its modules
    (`apiv11/  the endpoints: admin.py (...), profiles.py`)."""
    section = text.split("## The package", 1)[1]
    block = section.split("```", 2)[1]
    stack: list[tuple[int, str]] = []
    listed: list[str] = []
    last_folder: str | None = None
    description_column = 10**6
    for line in block.splitlines()[1:]:
        match = _ENTRY.match(line)
        if not match:
            continue
        indent, name = len(match.group(1)), match.group(2)
        entry = indent < description_column and (name.endswith("/") or name.endswith(".py"))
        if entry:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            prefix = "".join(folder for _, folder in stack)
            rest = line[match.end():]
            description_column = match.end() + len(rest) - len(rest.lstrip()) if rest.strip() else 10**6
            if name.endswith("/"):
                stack.append((indent, name))
                last_folder, described = prefix + name, rest
            else:
                listed.append(prefix + name)
                last_folder, described = None, ""
        else:  # a description continued on its own line
            described = line
        if last_folder is not None:
            listed += [last_folder + module for module in _MODULE.findall(described)]
    return listed


def modules() -> set[str]:
    return {str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")
            if path.name not in ("__init__.py", "__main__.py")}


def test_every_module_is_in_the_architecture_page_and_nothing_else():
    listed = set(package_tree(DOC.read_text()))
    missing = sorted(modules() - listed)
    assert not missing, f"modules missing from docs/architecture.md's package tree: {missing}"
    gone = sorted(listed - modules())
    assert not gone, f"docs/architecture.md lists modules that do not exist: {gone}"


def test_the_tree_parser_reads_folders_nesting_and_listed_modules():
    text = ("## The package\n\n```\naltcraft/\n  a.py   one\n  sub/   holds: b.py, c.py\n"
            "         g.py and d.py\n    e.py  nested\n  f.py   about x.py\n```\n")
    assert sorted(package_tree(text)) == sorted(["altcraft/a.py", "altcraft/sub/b.py", "altcraft/sub/c.py",
                                                 "altcraft/sub/d.py", "altcraft/sub/e.py", "altcraft/f.py",
                                                 "altcraft/sub/g.py"])


def test_no_ready_process_is_described_as_planned():
    stale = [p.name for p in registry.PROCESSES
             if p.status == "ready" and re.search(r"planned|being written|not yet", p.notes, re.I)]
    assert not stale, f"ready processes whose notes say a part is still to come: {stale}"
