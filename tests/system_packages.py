"""Debian packages a test needs as a tool (not a server): installed when missing, and a
loud failure, never a skip, when they cannot be had."""

from __future__ import annotations

import os
import subprocess

import pytest


def ensure(package: str, present: list[str]) -> None:
    """Installs `package` with apt-get unless the command `present` already succeeds."""
    if subprocess.run(present, capture_output=True).returncode == 0:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, capture_output=True, timeout=900)
    if subprocess.run(present, capture_output=True).returncode != 0:
        pytest.fail(f"the test needs Debian's {package}, and `apt-get install -y {package}` failed",
                    pytrace=False)
