"""What a supervisor last said about its process, kept in {BASEDIR}/run/akd/<name>.json."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

State = Literal["STARTING", "RUNNING", "BACKOFF", "STOPPING", "FATAL", "STOPPED"]


@dataclass
class ProcessState:
    state: State
    since: float = field(default_factory=time.time)
    pid: int | None = None
    supervisor_pid: int | None = None
    restarts: int = 0
    failed_starts: int = 0
    last_exit: str = ""


def _path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "akd" / f"{name}.json"


def save(run_dir: Path, name: str, state: ProcessState) -> None:
    path = _path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(state)))
    os.replace(tmp, path)  # readers never see a half-written file


def load(run_dir: Path, name: str) -> ProcessState | None:
    try:
        return ProcessState(**json.loads(_path(run_dir, name).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def clear(run_dir: Path, name: str) -> None:
    _path(run_dir, name).unlink(missing_ok=True)
