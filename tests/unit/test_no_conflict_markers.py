"""No file of the project keeps a merge's conflict markers. Some formats read them as
harmless junk (a Babel catalogue skips the lines, YAML may take them as text), so nothing
else would notice until a build or a user does."""

from __future__ import annotations

import re

from tests.lib import ROOT

FOLDERS = ("altcraft", "tests", "docs", "roles", "playbooks", "templates", "inventories", "scripts",
           "bench", "molecule", "requirements", "tools")
TOP = ("README.md", "install.sh", "setup.cfg", "pyproject.toml", "ansible.cfg")
MARKER = re.compile(rb"^(<<<<<<< |>>>>>>> |=======$)", re.M)
SKIP_PARTS = {"vendor", "__pycache__", ".venv", "node_modules"}


def _files():
    for name in TOP:
        if (ROOT / name).is_file():
            yield ROOT / name
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and not SKIP_PARTS.intersection(path.relative_to(ROOT).parts):
                yield path


def test_no_file_keeps_conflict_markers():
    found = []
    for path in _files():
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary
        for match in MARKER.finditer(data):
            line = data.count(b"\n", 0, match.start()) + 1
            found.append(f"{path.relative_to(ROOT)}:{line}")
    assert not found, "merge conflict markers left in: " + ", ".join(found[:20])
