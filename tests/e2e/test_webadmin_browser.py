"""The operator's path in a real browser, in one walk with one sign-in: Debian's Chromium
under Playwright against webadmin, akmtad and (later) a campaign process under akd, on the
real servers, with an SMTP sink on loopback.

First the process's probes and metrics (over HTTP). Then in the browser: sign in with the
password and a TOTP code (computed here with pyotp); create an account, freeze it, add a user
to it, create an API token for it; create a sender and see its DKIM TXT record, allow an
account to use it; on the MTA rules page a wrong bounce pattern is refused next to its field,
then the retry rule is changed and the running akmtad applies it; hold the sender's queue,
run a campaign of it and see its messages counted as held, release them and the sink
receives them; purge (typed confirmation); the account's virtual senders are listed on its
page; add an address to the global stop list and find
it there; the System page shows the processes and the stores; the journal lists each change
once, under the admin's name.

Every page is screenshotted into test-artifacts/screenshots/webadmin/ and checked for CSP and
axe violations (tests/lib/browser.py); no page may log a console error or answer 4xx/5xx
except the one refused save."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest

from tests.lib.browser import watched_page
from tests.lib.cli import run_json
from tests.lib.mta import Pipeline
from tests.lib.ports import free_port
from tests.lib.sink import Sink
from tests.lib.stand import http
from tests.lib.wait import wait_for
from tests.lib.webpanel import PASSWORD, make_admin, totp_code

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MESSAGES = 3
# every change the walk makes, each journaled once under the admin's name
CHANGES = ("admin.account_new", "admin.account_freeze", "admin.account_users", "admin.token_create",
           "admin.sender_new", "admin.sender_assign", "admin.mta_rules", "admin.queue_hold",
           "admin.queue_release", "admin.queue_purge", "admin.stoplist_add")


@pytest.fixture
def sink_port() -> int:
    return free_port()


@pytest.fixture
def operator_stand(harness, basedir, sink_port, vhost):
    port = free_port()
    pipe = Pipeline(harness, basedir, sink_port, vhost, processes={"webadmin": {"PORT": port, "WORKERS": 1}},
                    RULES_POLL_SECONDS=0.5)
    try:
        setup = pipe.setup_campaign(MESSAGES)
        pipe.start("webadmin", "akmtad")
        yield f"http://127.0.0.1:{port}", pipe, setup
    finally:
        pipe.stop()


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


def test_operator_walk(operator_stand, chromium, sink_port):
    from playwright.sync_api import expect

    base, pipe, setup = operator_stand
    _probes(base, pipe.main_json)
    platform, account = pipe.platform, setup["account"]
    admin = make_admin(platform, totp=True)
    tag = uuid.uuid4().hex[:6]
    name, shop, clerk = f"promo-{tag}", f"shop-{tag}", f"clerk-{tag}"
    stopped = f"no-mail.{tag}@example.test"
    with Sink(sink_port) as sink, watched_page(chromium, "webadmin") as watched:
        page, shot = watched.page, watched.shot

        def reloaded(check) -> bool:
            page.reload()
            return check()

        # -- sign in: the password, then the TOTP code
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

        # -- an account, frozen; a user of it; an API token of it
        page.get_by_test_id("account-new").click()
        shot("account-new")
        page.fill("[data-testid=account-form] input[name=name]", shop)
        page.fill("[data-testid=account-form] input[name=title]", "Shop")
        page.click("[data-testid=account-create]")
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Account {shop}")
        page.click("[data-testid=account-freeze]")
        expect(page.get_by_test_id("account-state")).to_have_text("active, frozen")
        shot("account")
        page.get_by_test_id("account-delete").click()
        shot("account-delete")
        page.get_by_test_id("nav-accounts").click()
        row = page.locator("tr", has=page.get_by_role("link", name=shop, exact=True))
        expect(row.get_by_test_id("account-state")).to_have_text("active, frozen")
        shot("accounts")
        page.get_by_role("link", name=shop, exact=True).click()
        page.get_by_test_id("account-users").click()
        form = page.get_by_test_id("user-add-form")
        form.locator("input[name=login]").fill(clerk)
        form.locator("input[name=password]").fill(PASSWORD)
        form.locator("input[name=name]").fill("Clerk")
        form.locator("input[name=roles][value=editor]").check()
        page.get_by_test_id("user-add").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(f"User {clerk}")
        shot("user")
        page.get_by_role("link", name=f"Users of {shop}").click()
        expect(page.get_by_test_id("users")).to_contain_text(clerk)
        shot("users")
        user = platform.users.collection.find_one({"login": clerk})
        assert user and sorted(user["roles"]) == ["editor", "viewer"]
        assert user["account_id"] == platform.accounts.collection.find_one({"name": shop})["id"]
        page.get_by_role("link", name="Back to the account").click()
        page.get_by_test_id("account-tokens").click()
        page.fill("[data-testid=token-form] input[name=name]", "shop feed")
        page.get_by_test_id("token-create").click()
        token = page.get_by_test_id("token-value").inner_text()
        assert len(token) > 20
        shot("tokens")
        page.get_by_test_id(re.compile(r"^token-revoke-")).first.click()
        shot("token-revoke")

        # -- a sender, its DKIM record, an account allowed to use it
        page.get_by_test_id("nav-senders").click()
        shot("senders")
        page.get_by_test_id("sender-new").click()
        form = page.get_by_test_id("sender-form")
        form.locator("input[name=name]").fill(name)
        form.locator("input[name=from_email]").fill("promo@shop.example")
        form.locator("input[name=from_name]").fill("Shop")
        form.locator("select[name=dkim_algorithm]").select_option("ed25519")
        shot("sender-new")
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
        shot("sender")
        # the account's virtual senders (made through the admin API) are listed on its page
        routing = platform.vsenders.add(account["id"], "promo routing", [
            {"match": "to_domain", "values": ["gmail.com"], "senders": [{"id": sender["id"], "weight": 2}]},
            {"match": "default", "senders": [{"id": sender["id"], "weight": 1}]}])
        page.get_by_test_id(f"sender-account-{account['id']}").get_by_role("link", name=account["name"]).click()
        expect(page.get_by_test_id(f"vsender-{routing['id']}")).to_contain_text(f"gmail.com → {name} (weight 2)")
        shot("account-vsenders")

        # -- MTA rules: a wrong pattern is refused next to its field; then a new retry rule
        page.get_by_test_id("nav-mta-rules").click()
        page.fill("input[name='BOUNCE_PATTERNS[0].PATTERN']", "user (unknown")
        page.get_by_test_id("rules-save").click()
        error = page.locator("[id='BOUNCE_PATTERNS[0].PATTERN-error']")
        expect(error).to_contain_text("rules.BOUNCE_PATTERNS[0].PATTERN: not a regular expression")
        shot("mta-rules-invalid")
        page.fill("input[name='BOUNCE_PATTERNS[0].PATTERN']", "")
        page.select_option("select[name='RETRY.TYPE']", "fixed")
        page.fill("input[name='RETRY.INTERVAL_SECONDS']", "120")
        page.get_by_test_id("rules-save").click()
        expect(page.get_by_test_id("saved")).to_contain_text("Saved as version 1")
        expect(page.get_by_test_id("rules-version-1")).to_contain_text(admin["login"])
        # akmtad takes the saved version without a restart (the page says which it applies)
        wait_for(lambda: reloaded(lambda: "akmtad applies version 1 now" in
                                  page.get_by_test_id("akmtad-state").inner_text()), timeout=20, what="akmtad applies version 1")
        shot("mta-rules")
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
        page.get_by_text("By account, campaign and ISP").first.click()  # the counts by ISP
        expect(page.get_by_test_id("queue-isp").first).to_have_text("default")  # no ISP rule names sink.test
        shot("queues")
        row.get_by_test_id(f"queue-release-{sender['id']}").click()
        expect(page.get_by_test_id("done")).to_contain_text("its queue is released")
        received = sink.wait_for(MESSAGES, timeout=60)
        assert sorted(m.rcpt for m in received) == sorted(setup["expected"])
        page.reload()
        row.get_by_test_id(f"queue-purge-{sender['id']}").click()
        shot("queue-purge")
        page.fill("input[name=confirm]", name)
        page.get_by_test_id("confirm-purge").click()
        expect(page.get_by_test_id("done")).to_contain_text("queued messages dropped")

        # -- the global stop list: not listed, added, then found
        page.get_by_test_id("nav-stoplist").click()
        lookup = page.get_by_test_id("stoplist-lookup")
        lookup.locator("input[name=contact]").fill(stopped)
        page.get_by_test_id("stoplist-find").click()
        expect(page.get_by_test_id("stoplist-not-listed")).to_be_visible()
        assert stopped not in page.url and "contact" not in page.url, page.url  # posted, not in the URL
        page.get_by_test_id("stoplist-add").click()
        expect(page.get_by_test_id("stoplist-done")).to_have_text("Added to the stop list.")
        page.get_by_test_id("nav-stoplist").click()
        lookup.locator("input[name=contact]").fill(stopped.upper())  # an address is found however typed
        page.get_by_test_id("stoplist-find").click()
        expect(page.get_by_test_id("stoplist-listed")).to_be_visible()
        expect(page.get_by_test_id("stoplist-md5")).to_have_text(hashlib.md5(stopped.encode()).hexdigest())
        shot("stoplist")

        # -- the System page: akd's processes and the stores' checks
        page.get_by_test_id("nav-system").click()
        for process in ("webadmin", "akmtad", "campaign"):
            expect(page.get_by_test_id(f"process-{process}").get_by_test_id("process-state")).to_have_text("RUNNING")
        expect(page.get_by_test_id("checks-summary")).to_have_text("Every store answers.")
        shot("system")

        page.get_by_test_id("nav-totp").click()
        expect(page.get_by_test_id("totp-qr")).to_be_visible()
        shot("totp-enrol")

        # -- the journal: each change once, under the admin's name
        page.get_by_test_id("nav-audit").click()
        page.fill("input[name=actor]", admin["login"])
        page.get_by_test_id("audit-apply").click()
        expect(page).to_have_url(re.compile(rf"actor={admin['login']}"))
        rows = page.locator("[data-testid^=audit-row-]")
        entries = [row.locator("td").all_inner_texts() for row in rows.all()]
        actions = [cells[5] for cells in entries]
        for action in CHANGES:  # the refused save wrote nothing
            assert actions.count(action) == 1, f"{action}: {actions.count(action)} times in the journal: {actions}"
        assert {cells[2] for cells in entries} == {f"{admin['login']} (administrator)"}, entries
        added = next(json.loads(cells[8]) for cells in entries if cells[5] == "admin.account_users")
        assert (added["login"], added["roles"], added["password"]) == (clerk, ["editor", "viewer"], "[redacted]")
        shot("audit")
    # the one refused save is the only 400 (the browser logs it on its console too)
    refused = [f"400 {base}/mta/rules",
               "console: Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]
    assert sorted(watched.problems) == sorted(refused), watched.problems
    assert platform.accounts.collection.find_one({"name": shop})["frozen"] is True
