"""End to end with a real browser: messages with signed tracking links go through a real
SMTP sink, a headless Chromium opens each one (loading the pixel from trkaction under akd)
and follows a link in some; the campaign report then shows exactly what the browser did,
and the clicks are in ClickHouse with their campaign and link.

The campaign pipeline (#4) is not finished, so the test assembles the messages itself with
altcraft.domain.tracking.url and publishes the `delivered` events akmtad would publish.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
import time
import uuid
from datetime import datetime, timezone
from email.message import EmailMessage

import pytest

from altcraft import registry
from altcraft.domain import events
from altcraft.services.api import create_app
from altcraft.wiring import Platform
from tests.lib.landing import PERSON, Landing
from tests.lib.ports import free_port
from tests.lib.stand import campaign_id
from tests.lib.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# A headless Chromium says "HeadlessChrome", which the bot filter rightly flags (scanners use
# headless browsers); this test reads mail as a person would, so it sends a desktop UA.


@pytest.fixture
def sink():
    """An SMTP server on loopback that keeps every message it is given (aiosmtpd)."""
    from aiosmtpd.controller import Controller

    class Keep:
        def __init__(self):
            self.messages: list[tuple[list[str], bytes]] = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
            return "250 OK kept"

    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def landing():
    """The shop's landing pages: records which ones the browser reached."""
    with Landing() as pages:
        yield pages.url, pages.seen


def test_browser_opens_and_clicks_are_reported_exactly(stand, chromium, sink, landing):
    from playwright.sync_api import sync_playwright

    controller, kept = sink
    landing_url, landed = landing
    platform = Platform(stand.config)
    account = platform.accounts.save(name=f"e2e{campaign_id()}")
    database = platform.databases(account["id"]).add("readers", "email")
    profiles = platform.profiles(account["id"], database.id)
    people = [profiles.add({"email": f"reader{i}@example.com", "first_name": f"Reader{i}"},
                           [{"resource_id": 1, "channel": "email", "status": "subscribed"}]) for i in range(5)]
    token, _ = platform.tokens.create("account", account["id"])
    a, d = account["id"], database.id
    campaign = platform.campaigns.add(a, "autumn sale", d, 0, 0, 0)["id"]  # the document; #4 sends
    stand.start("trkaction", "procactions")

    # the campaign: one message per profile, with signed links, a pixel and List-Unsubscribe
    targets, message_ids = {}, {}
    with smtplib.SMTP("127.0.0.1", controller.port, timeout=30) as smtp:
        for i, person in enumerate(people):
            pid = person["id"]
            targets[pid] = {n: f"{landing_url}/p/{i}?link={n}" for n in (1, 2)}
            link = {n: stand.link("click", a, d, campaign, pid, link_id=n, target=targets[pid][n]) for n in (1, 2)}
            unsubscribe = stand.link("unsubscribe", a, d, campaign, pid)
            message = EmailMessage()
            message["From"], message["To"] = "shop@example.com", person["data"]["email"]
            message_ids[pid] = f"{uuid.uuid4()}@example.com"
            message["Subject"], message["Message-ID"] = "Autumn sale", f"<{message_ids[pid]}>"
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            message.set_content("Autumn sale: " + link[1])
            message.add_alternative(
                f'<html><body><p>Hello Reader{i}</p>'
                f'<p><a id="link-1" href="{link[1]}">Sale</a></p>'
                f'<p><a id="link-2" href="{link[2]}">New arrivals</a></p>'
                f'<p><a id="unsubscribe" href="{unsubscribe}">Unsubscribe</a></p>'
                f'<img src="{stand.link("open", a, d, campaign, pid)}" width="1" height="1" alt="">'
                f'</body></html>', subtype="html")
            smtp.send_message(message)
    assert len(kept.messages) == 5
    delivered_at = datetime.now(timezone.utc)
    stand.publish([events.delivery(events.DeliveryFacts(
        message_id=message_ids[p["id"]], email=p["data"]["email"], account_id=a, sender_id=1, db_id=d,
        resource_id=1, campaign_id=campaign, profile_id=p["id"]), "delivered", 1, ip="", detail="250 OK kept",
        now=delivered_at.timestamp()) for p in people])
    time.sleep(3)  # a click within seconds of delivery is a scanner's: read like a person

    clicked = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
        context = browser.new_context(user_agent=PERSON)
        pages = []
        for rcpt, raw in kept.messages:
            html = email.message_from_bytes(raw, policy=email.policy.default).get_body(("html",)).get_content()
            page = context.new_page()
            page.set_content(html, wait_until="load")
            assert page.evaluate("document.images[0].complete && document.images[0].naturalWidth") == 1
            pages.append((rcpt[0], page))
        time.sleep(3)  # a click within a second of the open is a scanner's too
        for index in (0, 3):  # follow one link in some of the messages
            rcpt, page = pages[index]
            with page.expect_navigation():
                page.click("#link-2")
            person = next(p for p in people if p["data"]["email"] == rcpt)
            assert page.url == targets[person["id"]][2]
            assert page.title() == "landing"
            clicked[person["id"]] = page.url
        browser.close()
    assert sorted(landed) == sorted(url.removeprefix(landing_url) for url in clicked.values())

    api = create_app(stand.config, registry.get("api")).test_client()

    def report():
        data = api.post("/api/v1.1/campaigns/report", json={"token": token, "id": campaign}).get_json()["data"]
        return data if data["opened"]["total"]["all"] >= 5 and data["clicked"]["total"]["all"] >= 2 else None

    data = wait_for(report, timeout=60, what="the browser's opens and clicks in the report")
    time.sleep(2)
    data = report()
    assert (data["sent"], data["delivered"]) == (5, 5)
    assert data["opened"] == {"unique": {"all": 5, "human": 5}, "total": {"all": 5, "human": 5}}
    assert data["clicked"] == {"unique": {"all": 2, "human": 2}, "total": {"all": 2, "human": 2}}
    assert [(link["link_id"], link["clicks"]["total"]) for link in data["links"]] == [(2, {"all": 2, "human": 2})]
    assert data["unsubscribed"] == 0

    rows = stand.query("SELECT profile_id, campaign_id, link_id, url, user_agent FROM {events} "
                       "WHERE account_id = %(a)s AND kind = 'click'", {"a": a})
    assert sorted(rows) == sorted((pid, campaign, 2, url, PERSON) for pid, url in clicked.items())
    opens = stand.query("SELECT profile_id FROM {events} WHERE account_id = %(a)s AND kind = 'open' "
                        "AND campaign_id = %(c)s", {"a": a, "c": campaign})
    assert sorted(r[0] for r in opens) == sorted(p["id"] for p in people)
    platform.close()


def test_the_web_version_in_a_browser_runs_no_script_and_its_links_work(stand, chromium, landing):
    """The page's CSP (no scripts, a sandbox without same-origin) as Chromium applies it: the
    author's script does not run, the message shows, and a link goes through /c to its page."""
    from playwright.sync_api import sync_playwright

    from altcraft.domain import message as messages
    from altcraft.domain.templates import compile_parts

    landing_url, landed = landing
    platform = Platform(stand.config)
    try:
        account = platform.accounts.save(name=f"e2eweb{campaign_id()}")
        a = account["id"]
        database = platform.databases(a).add("readers", "email")
        profiles = platform.profiles(a, database.id)
        added = profiles.add({"email": "reader@example.com", "first_name": "Reader"})
        person = profiles.collection.find_one({"_id": added["id"]})  # the stored document, as the worker reads it
        template = platform.templates(a).add(
            "web", "Hi", f'<html><body><p id="hello">Hello {{{{ first_name }}}}</p>'
                         f'<script>document.getElementById("hello").textContent = "scripted"</script>'
                         f'<a id="go" href="{landing_url}/p/web">Sale</a></body></html>',
            "Online: {{ webversion_url }}")
        campaign = platform.campaigns.add(a, "web", database.id, 0, template["id"], 0)["id"]
        platform.snapshots(a).keep(campaign, 1, template)  # as the campaign worker does at launch
        envelope = messages.Envelope(a, database.id, 1, campaign, 1, "shop@example.com",
                                     tracking_base=stand.base, tracking_key=stand.config.TRACKING_CRYPT_KEY)
        sent = email.message_from_bytes(messages.render(compile_parts(template), envelope, person).data,
                                        policy=email.policy.default)
        web = sent.get_body(("plain",)).get_content().split("Online: ", 1)[1].split()[0]
        stand.start("trkaction")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_context(user_agent=PERSON).new_page()
            assert page.goto(web).status == 200
            assert page.text_content("#hello") == "Hello Reader"  # the script was blocked
            with page.expect_navigation():
                page.click("#go")
            assert page.url == f"{landing_url}/p/web" and page.title() == "landing"
            browser.close()
        assert landed == ["/p/web"]
    finally:
        platform.close()
