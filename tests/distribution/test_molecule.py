"""`molecule test -s basic`: site.yml converged on a systemd container built locally from
debootstrap (scripts/molecule-image.sh, which also starts dockerd), then idempotence (a
second converge changes nothing), verify (units active, sockets, health endpoints through
nginx, aktool check) and destroy."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import ROOT


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_molecule_basic_scenario(dist_env):
    image = subprocess.run([str(ROOT / "scripts" / "molecule-image.sh")], capture_output=True,
                           text=True, timeout=900)
    assert image.returncode == 0, image.stdout + image.stderr
    # The wheel is built from this checkout, unless ALTCRAFT_WHEEL names one (a release).
    env = dict(dist_env)
    result = subprocess.run(
        ["molecule", "-c", "molecule/base.yml", "test", "-s", "basic"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1700,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20000:]
    assert "idempotence" in output.lower()
