"""Fixtures of the distribution's tests: the tools' own venv (.venv-dist, made by
scripts/distribution-venv.sh from requirements/distribution.txt, apart from .venv)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.lib import ROOT


@pytest.fixture(scope="session")
def dist_venv() -> Path:
    result = subprocess.run([str(ROOT / "scripts" / "distribution-venv.sh")],
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail("scripts/distribution-venv.sh failed:\n" + result.stdout + result.stderr,
                    pytrace=False)
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def dist_env(dist_venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{dist_venv / 'bin'}:{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env.pop("VIRTUAL_ENV", None)
    return env
