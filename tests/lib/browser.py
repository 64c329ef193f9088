"""What every panel browser test shares: Debian's Chromium under Playwright (no browser
download), a page whose console errors, uncaught errors, 4xx/5xx answers and CSP violations
are collected, and `shot(name)`: a full-page screenshot that also fails on a CSP violation or
an accessibility violation of impact "serious" or "critical" (tests/lib/axe.py), so no page a
test screenshots goes unchecked."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tests.lib import ROOT
from tests.lib.axe import assert_accessible

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Records CSP violations in the page (Playwright's init scripts run whatever the page's CSP).
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


@dataclass
class Watched:
    page: Any
    context: Any
    folder: Path
    problems: list[str] = field(default_factory=list)

    def shot(self, name: str, accessible: bool = True) -> None:
        self.page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)
        violations = self.page.evaluate("window.__csp")
        assert not violations, f"{name}: CSP violations {violations}"
        if accessible:
            assert_accessible(self.page, name)

    def sign_in(self, base: str, login: str, password: str) -> None:
        self.page.goto(f"{base}/signin")
        self.page.fill("input[name=login]", login)
        self.page.fill("input[name=password]", password)
        self.page.click("[data-testid=signin]")


@contextmanager
def watched_page(chromium: str, panel: str, locale: str = "en-US") -> Iterator[Watched]:
    """A fresh browser with one watched page; screenshots go to SCREENSHOTS/<panel>/."""
    from playwright.sync_api import sync_playwright

    folder = SCREENSHOTS / panel
    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860}, locale=locale)
            context.add_init_script(WATCH_CSP)
            watched = Watched(context.new_page(), context, folder)
            problems = watched.problems
            watched.page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
            watched.page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            watched.page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status} {r.url}"))
            yield watched
        finally:
            browser.close()
