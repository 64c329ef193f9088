"""The operator's first steps in a real browser: Debian's Chromium driven by Playwright for
Python against webadmin under akd (gunicorn) on the real servers. The process's probes and
metrics first (over HTTP), then: sign in with the password and a TOTP code (computed here
with pyotp), create an account, freeze it, see its state in the list.

Every page is screenshotted into SCREENSHOTS; no page may log a console error, throw,
violate the Content-Security-Policy, or have a serious or critical axe violation.
"""

from __future__ import annotations

import json
import uuid

import pytest

from altcraft import config as cfg
from altcraft.schema import migrate as migration
from altcraft.wiring import Platform
from tests.lib import ROOT
from tests.lib.axe import assert_accessible
from tests.lib.cli import run, run_json
from tests.lib.harness import make_config
from tests.lib.ports import free_port
from tests.lib.stand import http
from tests.lib.webpanel import PASSWORD, make_admin, totp_code

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots" / "webadmin"
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


@pytest.fixture
def webadmin(harness, basedir):
    port = free_port()
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir, PROCESSES={"webadmin": {"PORT": port, "WORKERS": 1}})))
    config, _ = cfg.load(path)
    migration.run(config)
    started = run("akd", "start", "webadmin", config=path, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    platform = Platform(config)
    yield f"http://127.0.0.1:{port}", path, platform
    platform.close()
    run("akd", "stop", config=path, timeout=120)


def _probes(base: str, path) -> None:
    code, status = run_json("akd", "status", "webadmin", config=path)
    assert code == 0 and status[0]["state"] == "RUNNING", status
    assert http(f"{base}/webadmin/health")[::2] == (200, b"OK")
    code, _, body = http(f"{base}/webadmin/readiness")
    assert (code, json.loads(body)) == (200, {"status": "OK"})
    code, headers, _ = http(f"{base}/signin")
    assert code == 200 and "'nonce-" in headers["Content-Security-Policy"]
    assert headers["Set-Cookie"].startswith("ak_webadmin=")
    code, _, body = http(f"{base}/metrics")
    assert code == 200
    assert b'altcraft_http_requests_total{endpoint="/signin",method="GET",service="webadmin",status="200"}' in body


def test_operator_signs_in_with_totp_creates_and_freezes_an_account(webadmin, chromium):
    from playwright.sync_api import expect, sync_playwright

    base, path, platform = webadmin
    _probes(base, path)
    admin = make_admin(platform, totp=True)
    name = f"shop-{uuid.uuid4().hex[:6]}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
        context.add_init_script(WATCH_CSP)
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))

        def shot(label: str) -> None:
            page.screenshot(path=str(SCREENSHOTS / f"{label}.png"), full_page=True)
            violations = page.evaluate("window.__csp")
            assert not violations, f"{label}: CSP violations {violations}"
            assert_accessible(page, label)

        try:
            page.goto(f"{base}/")
            expect(page).to_have_url(f"{base}/signin")
            shot("signin")
            page.fill("input[name=login]", admin["login"])
            page.fill("input[name=password]", PASSWORD)
            page.click("[data-testid=signin]")
            expect(page).to_have_url(f"{base}/signin/code")
            shot("totp")
            page.fill("input[name=code]", totp_code(admin["totp_secret"]))
            page.click("[data-testid=totp-submit]")
            expect(page).to_have_url(f"{base}/accounts")
            shot("accounts")

            page.get_by_test_id("account-new").click()
            shot("account-new")
            page.fill("[data-testid=account-form] input[name=name]", name)
            page.fill("[data-testid=account-form] input[name=title]", "Shop")
            page.click("[data-testid=account-create]")
            expect(page.get_by_role("heading", level=1)).to_have_text(f"Account {name}")
            page.click("[data-testid=account-freeze]")
            expect(page.get_by_test_id("account-state")).to_have_text("active, frozen")
            shot("account")

            page.get_by_test_id("nav-accounts").click()
            row = page.locator("tr", has=page.get_by_role("link", name=name, exact=True))
            expect(row.get_by_test_id("account-state")).to_have_text("active, frozen")

            page.get_by_role("link", name=name, exact=True).click()
            page.get_by_test_id("account-delete").click()
            shot("account-delete")
            page.get_by_test_id("nav-totp").click()
            expect(page.get_by_test_id("totp-qr")).to_be_visible()
            shot("totp-enrol")
        finally:
            browser.close()
    frozen = platform.accounts.collection.find_one({"name": name})
    assert frozen and frozen["frozen"] is True and frozen["active"] is True
    assert not problems, problems
