"""webcontrol as the platform runs it: gunicorn under akd, real stores; health, readiness,
metrics; the sign-in page and the vendored files served over HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from altcraft.web.control import create_app  # noqa: F401  (the entry point must import)
from tests.lib.cli import run, run_json
from tests.lib.harness import make_config
from tests.lib.ports import free_port
from tests.lib.stand import http

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def webcontrol(harness, basedir):
    port = free_port()
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir, PROCESSES={"webcontrol": {"PORT": port, "WORKERS": 2}})))
    assert run("aktool", "migrate", config=path).returncode == 0
    started = run("akd", "start", "webcontrol", config=path, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    yield f"http://127.0.0.1:{port}", path
    run("akd", "stop", config=path, timeout=120)


def test_webcontrol_under_akd_serves_probes_the_sign_in_page_and_its_files(webcontrol):
    base, path = webcontrol
    code, status = run_json("akd", "status", "webcontrol", config=path)
    assert code == 0 and status[0]["state"] == "RUNNING", status

    assert http(f"{base}/webcontrol/health")[::2] == (200, b"OK")
    code, _, body = http(f"{base}/webcontrol/readiness")
    assert (code, json.loads(body)) == (200, {"status": "OK"})

    code, headers, _ = http(f"{base}/")
    assert code == 302 and headers["Location"] == "/signin"
    code, headers, body = http(f"{base}/signin")
    assert code == 200 and b'data-testid="signin-form"' in body
    assert "'nonce-" in headers["Content-Security-Policy"]

    lock = json.loads((Path(__file__).resolve().parents[2]
                       / "altcraft/web/static/vendor/vendor.lock.json").read_text())
    for entry in lock["files"]:
        code, _, body = http(f"{base}/assets/vendor/{entry['file']}")
        assert code == 200 and hashlib.sha256(body).hexdigest() == entry["sha256"], entry["file"]

    code, _, body = http(f"{base}/metrics")
    assert code == 200
    assert b'altcraft_http_requests_total{endpoint="/signin",method="GET",service="webcontrol",status="200"}' in body
