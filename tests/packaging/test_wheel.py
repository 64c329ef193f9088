"""`pip install` of the built wheel into a new virtual environment gives akd and aktool."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.lib import ROOT

pytestmark = pytest.mark.slow


def sh(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installs_akd_and_aktool(tmp_path):
    dist = tmp_path / "dist"
    sh(sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT))
    (wheel,) = dist.glob("altcraft-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "altcraft/akd/cli.py" in names and "altcraft/config.py" in names
    assert not any(n.startswith("tests/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "akd = altcraft.akd.cli:main" in text and "aktool = altcraft.aktool.cli:main" in text

    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", str(venv))
    sh(str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "requirements" / "constraints.txt"), str(wheel))
    table = sh(str(venv / "bin" / "akd"), "--processes", "--json", cwd=tmp_path)
    assert '"name": "api"' in table
    assert "check" in sh(str(venv / "bin" / "aktool"), "--help", cwd=tmp_path)
