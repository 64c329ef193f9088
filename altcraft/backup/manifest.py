"""manifest.json: what a backup holds, and the rules that make a backup complete.

A backup directory is complete only when `manifest.json` exists: it is written last, to a
temporary name, fsync'd, then renamed over (atomic on POSIX), so a run that was killed at
any moment leaves either no manifest or a whole one. While a run is going on it holds an
flock on `.lock` in the directory; a `.lock` without a holder is a run that died.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from altcraft.backup.digest import file_sha256

FORMAT = 1
MANIFEST = "manifest.json"
LOCK = ".lock"


class ManifestError(Exception):
    """A manifest that is missing, unreadable or not of this format."""


@dataclass
class FileEntry:
    size: int
    sha256: str

    def as_dict(self) -> dict:
        return {"size": self.size, "sha256": self.sha256}


@dataclass
class Problem:
    """One thing wrong with a backup, naming the file (relative to the backup) it is in."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def list_files(root: Path) -> list[str]:
    """Every regular file of the backup except the manifest and the lock, relative, sorted."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(root).as_posix()
            if rel not in (MANIFEST, LOCK) and not rel.startswith(MANIFEST + "."):
                found.append(rel)
    return sorted(found)


def hash_files(root: Path) -> dict[str, FileEntry]:
    return {rel: FileEntry((root / rel).stat().st_size, file_sha256(root / rel)) for rel in list_files(root)}


def write_atomic(root: Path, data: dict[str, Any]) -> Path:
    """Writes manifest.json by temporary file + fsync + rename + directory fsync."""
    final = root / MANIFEST
    tmp = root / f"{MANIFEST}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


def load(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        raise ManifestError(f"{path}: missing: the backup is incomplete (interrupted or failed)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(f"{path}: not a backup manifest of format {FORMAT}")
    for key in ("platform_version", "started_at", "finished_at", "files", "stores"):
        if key not in data:
            raise ManifestError(f"{path}: no {key!r}")
    return data


def check_files(root: Path, manifest: dict[str, Any]) -> list[Problem]:
    """Every file the manifest lists exists with its size and SHA-256; no file is unlisted."""
    problems: list[Problem] = []
    listed: dict[str, dict] = manifest["files"]
    for rel, entry in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            problems.append(Problem(rel, "missing"))
            continue
        size = path.stat().st_size
        if size != entry["size"]:
            problems.append(Problem(rel, f"size {size}, the manifest says {entry['size']}"))
            continue
        if file_sha256(path) != entry["sha256"]:
            problems.append(Problem(rel, "SHA-256 differs from the manifest (the file is damaged)"))
    for rel in list_files(root):
        if rel not in listed:
            problems.append(Problem(rel, "not in the manifest"))
    return problems


@dataclass
class RunLock:
    """The flock a running backup holds; the kernel drops it when the process dies."""

    root: Path
    _fd: int | None = field(default=None, repr=False)

    def acquire(self) -> None:
        self._fd = os.open(self.root / LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = None
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise ManifestError(f"{self.root}: another backup run is writing here") from None
            raise
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self, remove: bool) -> None:
        if self._fd is None:
            return
        if remove:
            (self.root / LOCK).unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def running(root: Path) -> bool:
    """True while a live process holds the backup's lock."""
    path = root / LOCK
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def state(root: Path) -> str:
    """complete | running | incomplete | damaged (a manifest that cannot be read)."""
    if (root / MANIFEST).exists():
        try:
            load(root)
        except ManifestError:
            return "damaged"
        return "complete"
    return "running" if running(root) else "incomplete"


def is_backup_dir(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST).exists() or (path / LOCK).exists())
