"""`pip install` of the built wheel into a new virtual environment gives akd and aktool."""

import json
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
    # the panels work from the wheel alone: templates, catalogues, own and vendored front-end files
    lock = json.loads((ROOT / "altcraft/web/static/vendor/vendor.lock.json").read_text())
    for needed in ["altcraft/web/templates/web/layout.html", "altcraft/web/control/templates/control/dashboard.html",
                   "altcraft/web/admin/templates/admin/accounts.html",
                   "altcraft/web/static/web/panel.js", "altcraft/web/static/vendor/vendor.lock.json",
                   "altcraft/web/translations/ru/LC_MESSAGES/messages.po",
                   *(f"altcraft/web/static/vendor/{e['file']}" for e in lock["files"])]:
        assert needed in names, f"{needed} is not in the wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "akd = altcraft.akd.cli:main" in text and "aktool = altcraft.aktool.cli:main" in text

    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", str(venv))
    sh(str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "requirements" / "constraints.txt"), str(wheel))
    table = sh(str(venv / "bin" / "akd"), "--processes", "--json", cwd=tmp_path)
    assert '"name": "api"' in table
    assert "check" in sh(str(venv / "bin" / "aktool"), "--help", cwd=tmp_path)
    # the installed panel renders its sign-in page in Russian, from the installed files only
    page = sh(str(venv / "bin" / "python"), "-c", (
        "import jinja2, flask\n"
        "from altcraft.web import i18n\n"
        "print(i18n.translations('ru').gettext('Sign in'))\n"
        "from altcraft.web.control import create_app\n"
        "from altcraft.web.admin.pages import qr_data_uri\n"  # pyotp and qrcode came with the wheel
        "assert qr_data_uri('otpauth://totp/x').startswith('data:image/svg+xml;base64,')\n"), cwd=tmp_path)
    assert page.strip() == "Вход"
