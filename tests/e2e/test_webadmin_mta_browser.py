"""The operator's MTA path in a real browser (Debian's Chromium under Playwright) against
webadmin and akmtad under akd, a campaign process and an SMTP sink on loopback: create a
sender and see its DKIM TXT record, allow an account to use it; on the MTA rules page a
wrong bounce pattern is refused next to its field, then the retry rule is changed; hold the
sender's queue, run a campaign of it and see its messages counted as held, release them and
the sink receives them; purge (typed confirmation); the journal lists each change once under
the admin's name.

Every page is screenshotted (test-artifacts/screenshots/webadmin/) and checked for CSP and
axe violations (tests/lib/browser.py)."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.lib.browser import watched_page
from tests.lib.mta import Pipeline
from tests.lib.ports import free_port
from tests.lib.sink import Sink
from tests.lib.wait import wait_for
from tests.lib.webpanel import PASSWORD, make_admin

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MESSAGES = 3


@pytest.fixture
def sink_port() -> int:
    return free_port()


@pytest.fixture
def mta_panel(harness, basedir, sink_port, vhost):
    port = free_port()
    pipe = Pipeline(harness, basedir, sink_port, vhost, processes={"webadmin": {"PORT": port, "WORKERS": 1}},
                    RULES_POLL_SECONDS=0.5)
    try:
        setup = pipe.setup_campaign(MESSAGES)
        pipe.start("webadmin", "akmtad")
        yield f"http://127.0.0.1:{port}", pipe, setup
    finally:
        pipe.stop()


def test_operator_creates_a_sender_changes_the_rules_and_holds_a_queue(mta_panel, chromium, sink_port):
    from playwright.sync_api import expect

    base, pipe, setup = mta_panel
    platform, account = pipe.platform, setup["account"]
    admin = make_admin(platform)
    name = f"promo-{uuid.uuid4().hex[:6]}"
    with Sink(sink_port) as sink, watched_page(chromium, "webadmin") as watched:
        page = watched.page

        def reloaded(check) -> bool:
            page.reload()
            return check()

        watched.sign_in(base, admin["login"], PASSWORD)
        expect(page).to_have_url(f"{base}/accounts")

        # -- a sender, its DKIM record, an account allowed to use it
        page.get_by_test_id("nav-senders").click()
        watched.shot("senders")
        page.get_by_test_id("sender-new").click()
        form = page.get_by_test_id("sender-form")
        form.locator("input[name=name]").fill(name)
        form.locator("input[name=from_email]").fill("promo@shop.example")
        form.locator("input[name=from_name]").fill("Shop")
        form.locator("select[name=dkim_algorithm]").select_option("ed25519")
        watched.shot("sender-new")
        page.get_by_test_id("sender-create").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Sender {name}")
        expect(page.get_by_test_id("dkim-name")).to_have_text("ak._domainkey.shop.example")
        sender = platform.senders.collection.find_one({"name": name})
        expect(page.get_by_test_id("dkim-record")).to_have_text(sender["dkim_dns_record"])
        assert sender["dkim_dns_record"].startswith("v=DKIM1; k=ed25519; p=")
        assert sender["dkim_private_key"] not in page.content()
        page.get_by_test_id("sender-assign-form").locator("input[name=account]").fill(account["name"])
        page.get_by_test_id("sender-assign").click()
        expect(page.get_by_test_id(f"sender-account-{account['id']}")).to_contain_text(account["name"])
        watched.shot("sender")

        # -- MTA rules: a wrong pattern is refused next to its field; then a new retry rule
        page.get_by_test_id("nav-mta-rules").click()
        page.fill("input[name='BOUNCE_PATTERNS[0].PATTERN']", "user (unknown")
        page.get_by_test_id("rules-save").click()
        error = page.locator("[id='BOUNCE_PATTERNS[0].PATTERN-error']")
        expect(error).to_contain_text("rules.BOUNCE_PATTERNS[0].PATTERN: not a regular expression")
        watched.shot("mta-rules-invalid")
        page.fill("input[name='BOUNCE_PATTERNS[0].PATTERN']", "")
        page.select_option("select[name='RETRY.TYPE']", "fixed")
        page.fill("input[name='RETRY.INTERVAL_SECONDS']", "120")
        page.get_by_test_id("rules-save").click()
        expect(page.get_by_test_id("saved")).to_contain_text("Saved as version 1")
        expect(page.get_by_test_id("rules-version-1")).to_contain_text(admin["login"])
        # akmtad takes the saved version without a restart (the page says which it applies)
        wait_for(lambda: reloaded(lambda: "akmtad applies version 1 now" in
                                  page.get_by_test_id("akmtad-state").inner_text()), timeout=20, what="akmtad applies version 1")
        watched.shot("mta-rules")
        assert platform.mta_rules.get()["rules"]["RETRY"]["INTERVAL_SECONDS"] == 120

        # -- queues: hold, a campaign of the sender fills it, the count shows, release
        page.get_by_test_id("nav-queues").click()
        row = page.get_by_test_id(f"queue-row-{sender['id']}")
        row.get_by_test_id(f"queue-hold-{sender['id']}").click()
        expect(page.get_by_test_id("done")).to_contain_text("its queue is held")
        wait_for(lambda: reloaded(lambda: row.get_by_test_id("queue-state").inner_text() == "held"),
                 timeout=10, what="the queue held")
        campaign = setup["campaign"]
        ours = platform.campaigns.add(account["id"], "held promo", campaign["db_id"], campaign["segment_id"],
                                      campaign["template_id"], sender["id"])
        platform.campaigns.start(account["id"], ours["id"])
        pipe.start("campaign")
        wait_for(lambda: reloaded(lambda: row.get_by_test_id("queue-hold").inner_text() == str(MESSAGES)),
                 timeout=60, what=f"{MESSAGES} messages held")
        assert not sink.messages  # held: nothing delivered
        watched.shot("queues")
        row.get_by_test_id(f"queue-release-{sender['id']}").click()
        expect(page.get_by_test_id("done")).to_contain_text("its queue is released")
        received = sink.wait_for(MESSAGES, timeout=60)
        assert sorted(m.rcpt for m in received) == sorted(setup["expected"])
        page.reload()
        row.get_by_test_id(f"queue-purge-{sender['id']}").click()
        watched.shot("queue-purge")
        page.fill("input[name=confirm]", name)
        page.get_by_test_id("confirm-purge").click()
        expect(page.get_by_test_id("done")).to_contain_text("queued messages dropped")

        # -- the journal: each change under the admin's name
        page.get_by_test_id("nav-audit").click()
        page.fill("input[name=actor]", admin["login"])
        page.get_by_test_id("audit-apply").click()
        expect(page).to_have_url(re.compile(rf"actor={admin['login']}"))
        journal = page.locator("[data-testid^=audit-row-]")
        actions = " ".join(journal.all_inner_texts())
        # each change once; the refused save wrote nothing
        for action in ("admin.sender_new", "admin.sender_assign", "admin.mta_rules", "admin.queue_hold",
                       "admin.queue_release", "admin.queue_purge"):
            assert len(re.findall(rf"\b{re.escape(action)}\b", actions)) == 1, f"{action}: not once in the journal"
        watched.shot("audit-mta")
    # the one refused save is the only 400 (the browser logs it on its console too)
    refused = [f"400 {base}/mta/rules",
               "console: Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]
    assert sorted(watched.problems) == sorted(refused), watched.problems
