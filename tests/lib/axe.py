"""Accessibility checks in the browser tests: axe-core (vendored for the tests in
tests/e2e/vendor/, see scripts/vendor-frontend.py --tests) run in the page a test is on.

axe is evaluated through Playwright (the DevTools protocol), not added as a <script>: the
panel's CSP would rightly refuse an inline script, and the page is checked as it is served.
Only violations of impact "serious" or "critical" fail; frames are left out (a template's
preview is the template author's markup, not the panel's).
"""

from __future__ import annotations

from tests.lib import ROOT

AXE = ROOT / "tests" / "e2e" / "vendor" / "axe-core" / "axe.min.js"
FAILING = ("serious", "critical")

_RUN = """async () => {
    const result = await axe.run(document, {iframes: false, resultTypes: ['violations']});
    return result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' ' + n.html.slice(0, 120)),
    }));
}"""


def violations(page) -> list[dict]:
    """Every axe violation of the page as it is now (any impact)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    return page.evaluate(_RUN)


def assert_accessible(page, name: str) -> None:
    """Fails naming each serious or critical violation of the page `name`."""
    bad = [v for v in violations(page) if v["impact"] in FAILING]
    assert not bad, f"{name}: accessibility violations:\n" + "\n".join(
        f"  {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in bad)
