"""PID files in {BASEDIR}/pids, and telling a live process from a stale file.

A PID file is trusted only if the process it names is alive *and* carries the expected
title (AK:<name>, or the akd supervisor's): after a crash or a reboot the number may belong
to an unrelated process, and signalling that one would be a serious mistake.
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil


def _matches(proc: psutil.Process, marker: str) -> bool:
    """True if one word of the command line is the marker (gunicorn may show it as [marker])."""
    try:
        words = " ".join(proc.cmdline()).split()
        return proc.status() != psutil.STATUS_ZOMBIE and (marker in words or f"[{marker}]" in words)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class PidFile:
    def __init__(self, directory: Path, name: str, suffix: str = ".pid",
                 marker: str | None = None):
        self.path = Path(directory) / f"{name}{suffix}"
        self.marker = marker or f"AK:{name}"

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(f"{pid}\n")
        os.replace(tmp, self.path)

    def read(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def process(self) -> psutil.Process | None:
        """The live process this file names, or None (missing file, dead or reused pid)."""
        pid = self.read()
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return None
        return proc if _matches(proc, self.marker) else None

    def is_stale(self) -> bool:
        return self.path.exists() and self.process() is None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def remove_if_owner(self, pid: int) -> None:
        if self.read() == pid:
            self.remove()
