"""Runs the installed console scripts the way an operator would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run(tool: str, *args: str, config: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [str(BIN / tool), *args]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def run_json(tool: str, *args: str, config: Path | None = None):
    result = run(tool, *args, "--json", config=config)
    return result.returncode, json.loads(result.stdout)


def wait_for(predicate, timeout: float = 30.0, what: str = "condition", every: float = 0.2):
    """Polls until predicate() is truthy and returns its value; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
