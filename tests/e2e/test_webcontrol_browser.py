"""The marketer's first steps in a real browser: Debian's Chromium driven by Playwright for
Python (no browser download) against webcontrol under akd (gunicorn, two workers) on the real
servers. Sign in, see the dashboard with its chart and recent campaigns, create a profile
database, add a profile, see it in the list and find it by e-mail.

Every page is screenshotted into SCREENSHOTS (docs/panels.md says where); no page may log a
console error, throw, violate the Content-Security-Policy, or have an accessibility violation
of impact "serious" or "critical" (axe-core, tests/lib/axe.py).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from altcraft import config as cfg, registry
from altcraft.domain.events import COLUMNS, Event, row
from altcraft.domain.reports import HourlyStats
from altcraft.schema import migrate as migration
from altcraft.services.api import create_app
from altcraft.stores import kv
from altcraft.stores.analytics import Analytics
from altcraft.wiring import Platform
from tests.lib.api import Client
from tests.lib.browser import SCREENSHOTS as BROWSER_SHOTS, watched_page
from tests.lib.cli import run
from tests.lib.harness import make_config
from tests.lib.ports import free_port
from tests.lib.webpanel import PASSWORD, make_tenant, people_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCREENSHOTS = BROWSER_SHOTS / "webcontrol"


def _start(harness, basedir, names: tuple[str, ...], **overrides):
    port = free_port()
    path = basedir / "main.json"
    path.write_text(json.dumps(make_config(harness, basedir, PROCESSES={"webcontrol": {"PORT": port, "WORKERS": 2}},
                                           **overrides)))
    config, _ = cfg.load(path)
    migration.run(config)
    started = run("akd", "start", *names, config=path, timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    platform = Platform(config)
    yield f"http://127.0.0.1:{port}", config, platform
    platform.close()
    run("akd", "stop", config=path, timeout=120)


@pytest.fixture
def panel(harness, basedir):
    yield from _start(harness, basedir, ("webcontrol",))


@pytest.fixture
def import_panel(harness, basedir):
    """webcontrol and procleadsaver, which runs the import jobs (batches of 100 rows, so
    that the progress moves)."""
    yield from _start(harness, basedir, ("webcontrol", "procleadsaver"), IMPORT={"BATCH": 100})


def _seed_activity(config, account_id: int) -> dict[str, int]:
    """Events in ClickHouse over the last days, turned into hourly statistics the way
    procactions does it (HourlyStats.refresh); returns what the dashboard must total."""
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    now = datetime.now(timezone.utc).replace(minute=5, second=0, microsecond=0)
    events = []
    for day, (delivered, opens, clicks) in enumerate(((3, 2, 1), (2, 1, 0), (1, 1, 1))):
        at = now - timedelta(days=day * 3)
        for kind, count in (("delivered", delivered), ("open", opens), ("click", clicks)):
            events += [Event(uuid.uuid4(), kind, at, account_id, db_id=1, campaign_id=7,
                             profile_id=uuid.uuid4().hex) for _ in range(count)]
    try:
        store.insert("events", COLUMNS, [row(e) for e in events])
        HourlyStats(kv.ssdb(config, "stats")).refresh(
            store, {(account_id, int(e.time.timestamp()) // 3600 * 3600) for e in events})
    finally:
        store.close()
    return {"sent": 6, "delivered": 6, "open": 4, "click": 2}


def test_marketer_signs_in_creates_a_database_and_finds_a_profile(panel, chromium):
    from playwright.sync_api import expect

    base, config, platform = panel
    # account ids far from 1: the hourly statistics store is shared by every test's stand
    platform.control.counters.update_one({"_id": "accounts"}, {"$set": {"seq": random.randrange(10**8, 10**9)}},
                                         upsert=True)
    tenant = make_tenant(platform, databases=1, profiles=0)
    totals = _seed_activity(config, tenant.account_id)
    platform.campaigns.add(tenant.account_id, "Spring sale", tenant.db_ids[0], 1, 1, sender_id=1)
    tag = uuid.uuid4().hex[:6]

    htmx_posts: list[dict] = []
    with watched_page(chromium, "webcontrol") as watched:
        page, context, problems, shot = watched.page, watched.context, watched.problems, watched.shot
        page.on("request", lambda r: r.method == "POST" and r.headers.get("hx-request") and htmx_posts.append(r.headers))

        # the watcher itself works: an inline script is refused and reported
        page.goto(f"{base}/signin")
        page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.x = 1';"
                      " document.body.appendChild(s); }")
        page.wait_for_function("window.__csp.length > 0")
        problems.clear()  # the refusal of that probe is logged as a console error too

        page.goto(f"{base}/")
        expect(page).to_have_url(f"{base}/signin")
        shot("signin")
        page.fill("input[name=login]", tenant.writer)
        page.fill("input[name=password]", PASSWORD)
        page.click("[data-testid=signin]")
        expect(page).to_have_url(f"{base}/dashboard")

        expect(page.get_by_test_id("campaigns")).to_contain_text("Spring sale")
        expect(page.get_by_test_id("campaigns")).to_contain_text("draft")
        expect(page.get_by_test_id("totals")).to_contain_text(
            f"{totals['sent']} sent, {totals['delivered']} delivered, {totals['open']} opens, {totals['click']} clicks")
        expect(page.locator("#activity .uplot canvas")).to_have_count(1)  # uPlot drew the chart
        shot("dashboard")
        page.get_by_test_id("user-login").click()
        expect(page).to_have_url(f"{base}/password")
        shot("password")
        page.go_back()

        page.get_by_test_id("nav-databases").click()
        expect(page).to_have_url(f"{base}/databases")
        page.wait_for_load_state("load")  # htmx is set up on DOMContentLoaded, before "load"
        page.fill("[data-testid=database-form] input[name=name]", f"Customers {tag}")
        page.click("[data-testid=database-create]")
        expect(page.get_by_test_id("databases")).to_contain_text(f"Customers {tag}")
        assert htmx_posts and htmx_posts[-1].get("x-csrf-token"), "htmx sent no CSRF header"
        expect(page).to_have_url(f"{base}/databases")  # swapped in place, no reload
        shot("databases")

        page.get_by_role("link", name=f"Customers {tag}").click()
        expect(page.get_by_test_id("no-profiles")).to_be_visible()
        page.fill("[data-testid=profile-form] input[name=email]", f"Anna.{tag}@Example.com")
        page.fill("[data-testid=profile-form] input[name=first_name]", "Anna")
        page.click("[data-testid=profile-create]")
        expect(page.get_by_test_id("profile-title")).to_have_text(f"anna.{tag}@example.com")
        expect(page.get_by_test_id("profile-fields")).to_contain_text("Anna")
        shot("profile")
        card_url = page.url
        page.get_by_test_id("profile-edit-open").click()
        page.fill("[data-testid=edit-phone]", "12")  # the domain's refusal, under its field
        page.click("[data-testid=profile-save]")
        expect(page.locator("#phone-error")).to_be_visible()
        shot("profile-edit-error")
        # that refusal (400) is the point: its response and console line are not faults
        problems[:] = [p for p in problems if not p.startswith("400 ") and "status of 400" not in p]
        page.fill("[data-testid=edit-phone]", "+7 916 555-00-01")
        page.click("[data-testid=profile-save]")
        expect(page.get_by_test_id("profile-saved")).to_be_visible()
        expect(page.get_by_test_id("profile-fields")).to_contain_text("+79165550001")
        page.get_by_test_id("profile-delete").click()
        shot("profile-delete")
        page.goto(card_url)

        page.get_by_role("link", name=f"Customers {tag}").click()
        expect(page.get_by_test_id("profiles")).to_contain_text(f"anna.{tag}@example.com")
        page.wait_for_load_state("load")
        page.fill("[data-testid=search-email]", "nobody")
        expect(page.get_by_test_id("no-profiles")).to_be_visible()
        page.fill("[data-testid=search-email]", f"anna.{tag}")
        expect(page.get_by_test_id("profiles")).to_contain_text(f"anna.{tag}@example.com")
        page.fill("[data-testid=search-email]", "")
        page.fill("[data-testid=search-phone]", "7916555000")
        expect(page.get_by_test_id("profiles")).to_contain_text(f"anna.{tag}@example.com")
        page.select_option("[data-testid=search-status]", "subscribed")  # it has no subscription
        expect(page.get_by_test_id("no-profiles")).to_be_visible()
        page.select_option("[data-testid=search-status]", "")
        page.fill("[data-testid=search-phone]", "")
        page.fill("[data-testid=search-email]", f"anna.{tag}")
        expect(page.get_by_test_id("profiles")).to_contain_text(f"anna.{tag}@example.com")
        shot("profiles")
        profiles_url = page.url

        # a segment: the live count as the builder changes is the domain's count
        page.get_by_test_id("nav-segments").click()
        shot("segments")
        (new_db,) = [d.id for d in platform.databases(tenant.account_id).list() if d.name == f"Customers {tag}"]
        page.get_by_test_id(f"segment-new-{new_db}").click()
        page.wait_for_load_state("load")
        page.fill("[data-testid=segment-name]", f"Annas {tag}")
        page.select_option("[data-testid=field-0]", "first_name")
        page.fill("[data-testid=value-0]", "Nobody")
        expect(page.get_by_test_id("segment-count")).to_have_text("0")
        page.fill("[data-testid=value-0]", "Anna")
        expect(page.get_by_test_id("segment-count")).to_have_text("1")
        expect(page.get_by_test_id("segment-sample")).to_contain_text(f"anna.{tag}@example.com")
        shot("segment-new")
        page.click("[data-testid=segment-create]")
        expect(page.get_by_test_id("segment-title")).to_have_text(f"Annas {tag}")
        segment_id = int(page.url.rsplit("/", 1)[1])
        api = Client(create_app(config, registry.get("api")).test_client(),
                     platform.tokens.create("account", account_id=tenant.account_id)[0])
        assert api.ok("segments/count", id=segment_id)["count"] == 1  # the API's answer
        expect(page.get_by_test_id("segment-count")).to_have_text("1")
        shot("segment")

        # nested groups: the segment opens in the builder, a group goes inside the top one
        # (negated), is removed, comes again and is saved; the live count follows each change
        page.click("[data-testid=segment-edit]")
        page.wait_for_load_state("load")
        count = page.get_by_test_id("segment-count")
        expect(count).to_have_text("1")
        page.click("[data-testid=add-group-top]")
        page.select_option("[data-testid=g1_field-0]", "first_name")
        page.fill("[data-testid=g1_value-0]", "Anna")
        expect(count).to_have_text("1")
        page.check("[data-testid=not-g1_]")
        expect(count).to_have_text("0")  # Anna and not Anna
        shot("segment-edit")
        page.click("[data-testid=remove-g1_]")
        expect(page.get_by_test_id("g1_field-0")).to_have_count(0)
        expect(count).to_have_text("1")
        page.click("[data-testid=add-group-top]")
        page.select_option("[data-testid=g1_field-0]", "first_name")
        page.fill("[data-testid=g1_value-0]", "Boris")
        page.check("[data-testid=not-g1_]")
        expect(count).to_have_text("1")
        page.click("[data-testid=segment-create]")
        expect(page.get_by_test_id("segment-title")).to_have_text(f"Annas {tag}")
        assert platform.segments(tenant.account_id).get(segment_id)["condition"] == {"and": [
            {"field": "first_name", "op": "eq", "value": "Anna"},
            {"not": {"and": [{"field": "first_name", "op": "eq", "value": "Boris"}]}}]}
        assert api.ok("segments/count", id=segment_id)["count"] == 1

        # a template whose script and onerror must run nowhere; its preview names the profile
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.get_by_test_id("nav-templates").click()
        shot("templates")
        page.get_by_test_id("template-new").click()
        shot("template-new")
        page.fill("[data-testid=template-form] input[name=name]", f"Welcome {tag}")
        page.fill("[data-testid=template-form] input[name=subject]", "Hello {{ first_name }}")
        page.fill("[data-testid=template-html]", '<style>.brand { color: rgb(0, 128, 0); }</style>'
                  '<p>Hello {{ first_name }}</p><script>alert("script")</script>'
                  '<h1 class="brand">Sale</h1><p data-x="inline" style="color: rgb(200, 0, 0)">Red</p>'
                  '<img src="data:x" alt="" onerror="alert(\'onerror\')">')
        page.click("[data-testid=template-save]")
        expect(page.get_by_test_id("template-title")).to_have_text(f"Welcome {tag}")
        page.wait_for_load_state("load")
        page.select_option("[data-testid=preview-db]", label=f"Customers {tag}")
        page.fill("[data-testid=preview-profile]", f"anna.{tag}@example.com")
        page.click("[data-testid=preview-show]")
        expect(page.get_by_test_id("preview-subject")).to_have_text("Hello Anna")
        expect(page.frame_locator("[data-testid=preview-html]").locator("p").first).to_have_text("Hello Anna")
        # the template's own styles apply in the frame (its response has the preview's CSP)
        frame = page.frame_locator("[data-testid=preview-html]")
        assert frame.locator("h1.brand").evaluate("e => getComputedStyle(e).color") == "rgb(0, 128, 0)"
        assert frame.locator("p[data-x=inline]").evaluate("e => getComputedStyle(e).color") == "rgb(200, 0, 0)"
        page.get_by_test_id("preview-html").scroll_into_view_if_needed()  # painted in the screenshot
        page.wait_for_timeout(500)  # time for a script or handler to fire, if one could
        assert dialogs == [], dialogs
        shot("template")
        # the blocked script and the template's broken image are reported on the console by
        # Chromium: expected, not faults of the panel
        problems[:] = [p for p in problems if not any(
            s in p for s in ("sandboxed", "Content Security Policy", "ERR_INVALID_URL"))]

        page.goto(profiles_url)
        page.wait_for_load_state("load")

        # signed out meanwhile (the cookie is gone): the next htmx request takes the whole
        # page to sign-in instead of swapping the sign-in form into the table
        context.clear_cookies()
        page.fill("[data-testid=search-email]", "anna")
        expect(page).to_have_url(f"{base}/signin")
        expect(page.get_by_test_id("signin-form")).to_be_visible()
    assert not problems, problems
    assert {"dashboard.png", "databases.png", "profile.png", "profiles.png", "signin.png", "segment-new.png",
            "segment.png", "segment-edit.png", "template.png"} <= {p.name for p in SCREENSHOTS.glob("*.png")}


def test_marketer_imports_a_file_sees_its_bad_rows_and_the_result(import_panel, chromium):
    """Upload 1,000 profiles of which 10 are broken: the check lists exactly those 10 line
    numbers; the import runs in procleadsaver while the page follows it, and ends with 990
    new profiles."""
    from playwright.sync_api import expect

    base, config, platform = import_panel
    tenant = make_tenant(platform, databases=1, profiles=0)
    db_id = tenant.db_ids[0]
    text, bad_lines = people_csv(1000, broken=10)
    assert len(bad_lines) == 10
    with watched_page(chromium, "webcontrol") as watched:
        page, problems, shot = watched.page, watched.problems, watched.shot
        page.goto(f"{base}/signin")
        page.fill("input[name=login]", tenant.writer)
        page.fill("input[name=password]", PASSWORD)
        page.click("[data-testid=signin]")
        expect(page).to_have_url(f"{base}/dashboard")
        page.goto(f"{base}/databases/{db_id}/profiles")
        page.get_by_test_id("imports-link").click()
        page.set_input_files("[data-testid=import-file]", files=[
            {"name": "people.csv", "mimeType": "text/csv", "buffer": text.encode()}])
        page.click("[data-testid=import-upload]")
        expect(page.get_by_test_id("import-title")).to_have_text("people.csv")
        # columns mapped by their names: "E-mail" to the key, "Name" to first_name
        expect(page.get_by_test_id("map-0")).to_have_value("email")
        expect(page.get_by_test_id("map-1")).to_have_value("first_name")
        expect(page.get_by_test_id("map-2")).to_have_value("city")
        shot("import-mapping")
        page.click("[data-testid=import-check]")
        expect(page.get_by_test_id("bad-line")).to_have_text([str(n) for n in bad_lines], timeout=60_000)
        expect(page.get_by_test_id("check-summary")).to_contain_text("1000 rows: 990 can be imported, 10 cannot.")
        assert platform.profiles(tenant.account_id, db_id).collection.count_documents({}) == 0
        shot("import-check")

        page.click("[data-testid=import-start]")
        expect(page.get_by_test_id("result-inserted")).to_have_text("990", timeout=60_000)
        expect(page.get_by_test_id("result-failed")).to_have_text("10")
        shot("import-done")
        assert platform.profiles(tenant.account_id, db_id).collection.count_documents({}) == 990

        page.get_by_role("link", name="← Imports into").click()
        expect(page.get_by_test_id("imports")).to_contain_text("done (import)")
        shot("imports")
    assert not problems, problems
    assert {"import-mapping.png", "import-check.png", "import-done.png", "imports.png"} <= {
        p.name for p in SCREENSHOTS.glob("*.png")}
