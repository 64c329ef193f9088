"""Runs the installed console scripts the way an operator would."""

from __future__ import annotations

import json
import subprocess
import sys
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
