#!/usr/bin/env python3
"""Fills altcraft/web/static/vendor/ (or, with --tests, tests/e2e/vendor/) from the npm registry and writes vendor.lock.json.

The panels load no file from any other site: the front-end libraries are taken whole from
their npm packages (`npm pack NAME@VERSION`, through npm's own registry client), the files
the pages need are copied with each package's licence file, and the lock records for each
file its package, version, SHA-256 and licence. tests/unit/test_web_vendor.py checks every
vendored file against the lock, so a changed or added file without a lock entry fails.

    scripts/vendor-frontend.py            # fetch, copy, write the lock
    scripts/vendor-frontend.py --check    # only compare what is committed with the lock
    scripts/vendor-frontend.py --tests [--check]   # the same for the browser tests' files

The browser tests' files (axe-core, which checks every page's accessibility) are kept apart
in tests/e2e/vendor/ with their own lock: they are not part of the panel and not shipped in
the wheel. tests/unit/test_web_base.py checks both locks.

To move a library to another version, change PACKAGES below and run the script; commit the
vendored files, their licences and the lock together. Needs npm (Debian: apt-get install npm).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "altcraft" / "web" / "static" / "vendor"
TEST_VENDOR = ROOT / "tests" / "e2e" / "vendor"
LOCK_NAME = "vendor.lock.json"

# package -> (exact version, {file inside the package: name under vendor/<package>/})
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "htmx.org": ("4.0.1", {"dist/htmx.min.js": "htmx.min.js"}),
    "uplot": ("1.6.32", {"dist/uPlot.iife.min.js": "uPlot.iife.min.js",
                         "dist/uPlot.min.css": "uPlot.min.css"}),
}
# what only the browser tests load (injected into the pages they visit)
TEST_PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "axe-core": ("4.14.1", {"axe.min.js": "axe.min.js"}),
}
LICENCE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pack(name: str, version: str, workdir: Path) -> Path:
    result = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=workdir,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"npm pack {name}@{version} failed:\n{result.stderr}")
    return workdir / result.stdout.strip().splitlines()[-1]


def _extract(tarball: Path, member: str) -> bytes:
    with tarfile.open(tarball) as archive:
        handle = archive.extractfile(f"package/{member}")
        if handle is None:
            raise SystemExit(f"{tarball.name}: {member} is not a regular file")
        return handle.read()


def _members(tarball: Path) -> set[str]:
    with tarfile.open(tarball) as archive:
        return {m.name.removeprefix("package/") for m in archive.getmembers()}


def fetch(packages: dict[str, tuple[str, dict[str, str]]], vendor: Path) -> list[dict]:
    entries: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vendor-frontend-") as tmp:
        workdir = Path(tmp)
        for name, (version, files) in packages.items():
            tarball = _pack(name, version, workdir)
            manifest = json.loads(_extract(tarball, "package.json"))
            if manifest.get("version") != version:
                raise SystemExit(f"{name}: asked for {version}, npm gave {manifest.get('version')}")
            licence = manifest.get("license", "")
            target = vendor / name
            target.mkdir(parents=True, exist_ok=True)
            members = _members(tarball)
            licence_file = next((f for f in LICENCE_FILES if f in members), None)
            if licence_file is None:
                raise SystemExit(f"{name}@{version} ships no licence file")
            wanted = {**files, licence_file: licence_file}
            for member, local in wanted.items():
                path = target / local
                path.write_bytes(_extract(tarball, member))
                entries.append({"name": name, "version": version, "file": f"{name}/{local}",
                                "source": member, "sha256": sha256(path), "licence": licence})
    return entries


def check(vendor: Path) -> list[str]:
    """Problems: files missing, changed, or present without a lock entry."""
    lock = vendor / LOCK_NAME
    if not lock.exists():
        return [f"{lock} is missing"]
    entries = json.loads(lock.read_text())["files"]
    problems = []
    locked = set()
    for entry in entries:
        path = vendor / entry["file"]
        locked.add(path)
        if not path.is_file():
            problems.append(f"{entry['file']}: missing")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"{entry['file']}: SHA-256 differs from the lock")
    for path in vendor.rglob("*"):
        if path.is_file() and path != lock and path not in locked:
            problems.append(f"{path.relative_to(vendor)}: not in the lock")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify the vendored files")
    parser.add_argument("--tests", action="store_true",
                        help="the browser tests' files (tests/e2e/vendor/) instead of the panel's")
    args = parser.parse_args()
    packages, vendor = (TEST_PACKAGES, TEST_VENDOR) if args.tests else (PACKAGES, VENDOR)
    if not args.check:
        entries = fetch(packages, vendor)
        lock = vendor / LOCK_NAME
        lock.write_text(json.dumps({"registry": "npm", "files": entries}, indent=2) + "\n")
        print(f"wrote {lock.relative_to(ROOT)}: {len(entries)} files")
    problems = check(vendor)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
