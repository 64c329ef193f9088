"""Molecule run from the distribution's tests (its venv's PATH in `env`: the dist_env fixture)."""

from __future__ import annotations

import re
import subprocess

from tests.lib import ROOT


def molecule(env, *args, timeout):
    """Runs molecule; returns its exit code and its output as one line of words (molecule
    frames and wraps Ansible's output to the terminal's width)."""
    env = {**env, "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "COLUMNS": "400"}
    result = subprocess.run(["molecule", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout)
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    return result.returncode, " ".join(output.replace("\u2502", " ").split())


def fresh_scenario(env, scenario: str) -> None:
    """The project's systemd image built (scripts/molecule-image.sh) and any instance an
    interrupted earlier run left of `scenario` destroyed: `molecule test --destroy never`
    skips its first destroy too, so each run starts from a clean slate here."""
    image = subprocess.run([str(ROOT / "scripts" / "molecule-image.sh")], capture_output=True,
                           text=True, timeout=900)
    assert image.returncode == 0, image.stdout + image.stderr
    molecule(env, "destroy", "-s", scenario, timeout=600)
