"""webcontrol's campaign and report pages on the real stores: the wizard shows the domain's
errors under their fields and stores what the API would; a campaign's page offers exactly
the transitions the domain's guard allows and shows its refusal; the list refreshes itself
while a campaign runs; the report counts each event once (uniqExact(event_id) in ClickHouse)
and exports the same figures as CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from altcraft import registry
from altcraft.domain import reports
from altcraft.domain.events import COLUMNS, Event, row
from altcraft.stores.analytics import Analytics
from altcraft.web.control import campaign_pages, create_app
from altcraft.wiring import Platform
from tests.lib.wait import wait_for
from tests.lib.webpanel import make_tenant, signin

pytestmark = pytest.mark.integration
BUTTON = re.compile(r'data-testid="campaign-(start|pause|resume|cancel)"')


@pytest.fixture
def config(stores):
    return stores[0]


@pytest.fixture
def platform(stores):
    return stores[1]


def _signed_in(config, platform, campaigns=("draft", "scheduled", "paused")):
    tenant = make_tenant(platform, profiles=2, segments=1, templates=1, campaigns=campaigns)
    platform.accounts.save(id=tenant.account_id, tz="Europe/Moscow")
    client = create_app(config, registry.get("webcontrol")).test_client()
    return tenant, client, signin(client, tenant.writer)


@pytest.fixture(scope="module")
def account(stores):
    """One account and its signed-in writer for the module (signing in costs argon2 hashes)."""
    return _signed_in(*stores)


@pytest.fixture
def setup(platform, account):
    """The module's account with a draft, a scheduled and a paused campaign of the test's own."""
    tenant, client, token = account
    fresh = dataclasses.replace(tenant, campaign_ids=[])
    for state, steps in (("draft", ()), ("scheduled", ("start",)), ("paused", ("start", "pause"))):
        doc = platform.campaigns.add(tenant.account_id, f"camp {state}", tenant.db_ids[-1], tenant.segment_ids[-1],
                                     tenant.template_ids[-1], sender_id=tenant.sender_id,
                                     schedule={"type": "once", "at": "2099-01-01T00:00:00Z"})
        for step in steps:
            getattr(platform.campaigns, step)(tenant.account_id, doc["id"])
        fresh.campaign_ids.append(doc["id"])
    return fresh, client, token


def _field_error(html: str, name: str) -> str:
    found = re.search(rf'id="{name}-error"[^>]*>([^<]*)<', html)
    return found.group(1) if found else ""


def test_wizard_shows_the_domains_errors_by_field_and_creates_a_draft(platform, setup):
    tenant, client, token = setup
    other_db = platform.databases(tenant.account_id).add("other").id
    platform.segments(tenant.account_id).add("elsewhere", other_db, {})
    db = tenant.db_ids[-1]

    step1 = client.get("/campaigns/new").data.decode()
    assert 'data-testid="campaign-db"' in step1 and "campaign-form" not in step1
    step2 = client.get(f"/campaigns/new?db_id={db}").data.decode()
    assert "seg 0" in step2 and "elsewhere" not in step2  # the segments of the chosen database only
    assert f's:{tenant.sender_id}' in step2

    good = {"csrf_token": token, "db_id": db, "name": "Spring", "segment_id": tenant.segment_ids[-1],
            "template_id": tenant.template_ids[-1], "sender": f"s:{tenant.sender_id}", "resource_id": "1",
            "schedule": "now"}
    before = len(platform.campaigns.list(tenant.account_id))
    for change, field, reason in (({"name": " "}, "name", "missing"),
                                  ({"sender": ""}, "sender", "give exactly one of sender_id and vsender_id"),
                                  ({"schedule": "cron", "cron": "every day"}, "cron", "a valid cron expression"),
                                  ({"schedule": "at", "at": "tomorrow"}, "at", "an ISO 8601 time"),
                                  ({"resource_id": "0"}, "resource_id", "a positive integer"),
                                  ({"segment_id": ""}, "segment_id", "choose a segment")):
        response = client.post("/campaigns/new", data={**good, **change})
        assert response.status_code == 400, change
        assert _field_error(response.data.decode(), field).startswith(reason), (field, response.data[-3000:])
    # a segment of the account that is not there: the domain's NotFound above the form
    response = client.post("/campaigns/new", data={**good, "segment_id": "999999"})
    assert response.status_code == 404 and b"segment 999999 not found" in response.data
    assert len(platform.campaigns.list(tenant.account_id)) == before, "an invalid form stored a campaign"

    response = client.post("/campaigns/new", data={**good, "schedule": "at", "at": "2099-03-01T09:30"})
    assert response.status_code == 302
    campaign_id = int(response.headers["Location"].rsplit("/", 1)[1])
    stored = platform.campaigns.get(tenant.account_id, campaign_id)
    assert stored["state"] == "draft" and stored["sender_id"] == tenant.sender_id
    # the form's time is the account's (Moscow, UTC+3)
    assert stored["schedule"]["at"].replace(tzinfo=timezone.utc) == datetime(2099, 3, 1, 6, 30, tzinfo=timezone.utc)
    response = client.post("/campaigns/new", data={**good, "schedule": "cron", "cron": "0 9 * * 1"})
    cron = platform.campaigns.get(tenant.account_id, int(response.headers["Location"].rsplit("/", 1)[1]))
    assert cron["schedule"] == {"type": "regular", "cron": "0 9 * * 1"}


def test_buttons_follow_the_guard_and_a_refusal_is_shown(platform, setup):
    tenant, client, token = setup
    draft, scheduled, paused = tenant.campaign_ids
    for campaign_id, expected in ((draft, ["start"]), (scheduled, ["pause", "cancel"]),
                                  (paused, ["resume", "cancel"])):
        page = client.get(f"/campaigns/{campaign_id}").data.decode()
        assert BUTTON.findall(page) == expected, (campaign_id, BUTTON.findall(page))

    # a transition the guard refuses (as when another user changed it meanwhile)
    response = client.post(f"/campaigns/{draft}/pause", data={"csrf_token": token})
    assert response.status_code == 409
    page = response.data.decode()
    assert 'data-testid="transition-error"' in page
    assert f"campaign {draft} is draft; this needs one of: sending, scheduled" in page
    assert platform.campaigns.get(tenant.account_id, draft)["state"] == "draft"
    assert BUTTON.findall(page) == ["start"]

    assert client.post(f"/campaigns/{paused}/cancel", data={"csrf_token": token}).status_code == 302
    page = client.get(f"/campaigns/{paused}").data.decode()
    assert 'data-testid="campaign-state">cancelled<' in page and BUTTON.findall(page) == ["start"]

    # a read-only user sees the state, not the buttons
    reader = create_app(client.application.extensions["altcraft_panel"].config,
                        registry.get("webcontrol")).test_client()
    signin(reader, tenant.reader)
    assert BUTTON.findall(reader.get(f"/campaigns/{scheduled}").data.decode()) == []


def test_edit_clone_and_delete_follow_the_domains_rules(platform, setup):
    """Edit shows the stored campaign in the wizard (its time in the account's zone) and saves
    through Campaigns.update; a scheduled campaign is refused with the reason and kept as it
    was; clone opens a draft copy; delete asks first and refuses a scheduled campaign."""
    tenant, client, token = setup
    draft, scheduled, paused = tenant.campaign_ids
    form = client.get(f"/campaigns/{draft}/edit").data.decode()
    assert 'value="camp draft"' in form and 'data-testid="campaign-save"' in form
    assert 'value="2099-01-01T03:00"' in form  # 00:00 UTC in Moscow
    good = {"csrf_token": token, "name": "Renamed", "segment_id": tenant.segment_ids[-1],
            "template_id": tenant.template_ids[-1], "sender": f"s:{tenant.sender_id}", "resource_id": "1",
            "schedule": "cron", "cron": "every day"}
    response = client.post(f"/campaigns/{draft}/edit", data=good)
    assert response.status_code == 400 and _field_error(response.data.decode(), "cron").startswith("a valid cron")
    assert platform.campaigns.get(tenant.account_id, draft)["name"] == "camp draft", "a refused edit stored a change"
    assert client.post(f"/campaigns/{draft}/edit", data={**good, "cron": "0 9 * * 1"}).status_code == 302
    stored = platform.campaigns.get(tenant.account_id, draft)
    assert (stored["name"], stored["schedule"]) == ("Renamed", {"type": "regular", "cron": "0 9 * * 1"})

    page = client.get(f"/campaigns/{scheduled}").data.decode()
    assert 'data-testid="campaign-edit"' not in page and 'data-testid="campaign-delete"' not in page
    response = client.post(f"/campaigns/{scheduled}/edit", data={**good, "cron": "0 9 * * 1"})
    assert response.status_code == 409 and f"campaign {scheduled} is scheduled: pause it first" in response.data.decode()
    assert platform.campaigns.get(tenant.account_id, scheduled)["name"] == "camp scheduled"

    response = client.post(f"/campaigns/{paused}/clone", data={"csrf_token": token})
    copy = platform.campaigns.get(tenant.account_id, int(response.headers["Location"].rsplit("/", 1)[1]))
    assert (copy["name"], copy["state"], copy["segment_id"]) == ("Clone of camp paused", "draft", tenant.segment_ids[-1])

    response = client.post(f"/campaigns/{scheduled}/delete", data={"csrf_token": token})
    assert response.status_code == 409 and b'data-testid="delete-error"' in response.data
    assert 'data-testid="confirm-delete"' in client.get(f"/campaigns/{copy['id']}/delete").data.decode()
    assert client.post(f"/campaigns/{copy['id']}/delete", data={"csrf_token": token}).status_code == 302
    assert client.get(f"/campaigns/{copy['id']}").status_code == 404
    assert platform.campaigns.get(tenant.account_id, scheduled)["state"] == "scheduled"


def test_the_list_refreshes_itself_only_while_a_campaign_runs(config, platform):
    tenant, client, token = _signed_in(config, platform)  # an account whose campaigns are all here
    platform.campaigns.collection.update_one({"id": tenant.campaign_ids[1]},
                                             {"$set": {"progress": {"published": 7, "skipped": 2}}})
    page = client.get("/campaigns").data.decode()
    assert 'hx-trigger="every 2s"' in page  # one is scheduled
    assert 'data-testid="published-%d">7<' % tenant.campaign_ids[1] in page
    fragment = client.get("/campaigns", headers={"HX-Request": "true"}).data.decode()
    assert "<html" not in fragment and 'id="campaign-list"' in fragment
    client.post(f"/campaigns/{tenant.campaign_ids[1]}/cancel", data={"csrf_token": token})
    page = client.get("/campaigns").data.decode()
    assert "hx-trigger" not in page  # nothing runs: nothing polls


def test_the_list_pages_by_key_newest_first(platform, setup, monkeypatch):
    tenant, client, _ = setup
    monkeypatch.setattr(campaign_pages, "PAGE_SIZE", 2)
    for index in range(2):
        platform.campaigns.add(tenant.account_id, f"more {index}", tenant.db_ids[-1], tenant.segment_ids[-1],
                               tenant.template_ids[-1], sender_id=tenant.sender_id)
    seen, url, pages = [], "/campaigns", 0
    while url:
        html = client.get(url).data.decode()
        seen += [int(i) for i in re.findall(r'data-testid="campaign-row-(\d+)"', html)]
        found = re.search(r'href="([^"]+)" data-testid="next-page"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    every = [c["id"] for c in platform.campaigns.list(tenant.account_id)]
    assert seen == sorted(every, reverse=True)  # each once, newest first
    assert pages == (len(every) + 1) // 2 and len(every) >= 5


def _events(account_id: int, db_id: int, campaign_id: int) -> list[Event]:
    """5 delivered, opens by 3 people (one twice, one bot), clicks by 2 on two links; one
    open stored twice with the same event_id (a redelivered batch before the merge)."""
    at = datetime.now(timezone.utc).replace(minute=10, second=0, microsecond=0) - timedelta(hours=2)
    people = [uuid.uuid4().hex for _ in range(5)]

    def event(kind, profile, hours=0, **extra):
        return Event(uuid.uuid4(), kind, at + timedelta(hours=hours), account_id, db_id=db_id,
                     campaign_id=campaign_id, profile_id=profile, **extra)

    events = [event("delivered", p) for p in people]
    events += [event("bounced_hard", uuid.uuid4().hex), event("bounced_soft", uuid.uuid4().hex)]
    opens = [event("open", people[0], 1), event("open", people[0], 1), event("open", people[1], 1),
             event("open", people[2], 1, is_bot=True, bot_reason="scanner")]
    events += opens + [opens[0]]  # the same event again
    events += [event("click", people[0], 2, link_id=1, url="https://shop.example/sale"),
               event("click", people[1], 2, link_id=2, url="=HYPERLINK(\"x\")"),
               event("unsubscribe", people[3], 2)]
    return events


def test_report_counts_each_event_once_and_exports_the_same(config, platform, setup, monkeypatch):
    tenant, client, _ = setup
    campaign_id = tenant.campaign_ids[0]
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    try:
        store.insert("events", COLUMNS, [row(e) for e in _events(tenant.account_id, tenant.db_ids[-1], campaign_id)])
    finally:
        store.close()
    page = client.get(f"/campaigns/{campaign_id}/report").data.decode()

    def cell(testid: str) -> int:
        return int(re.search(rf'data-testid="{testid}">(\d+)<', page).group(1))

    assert (cell("sent"), cell("delivered"), cell("bounced-hard"), cell("bounced-soft")) == (7, 5, 1, 1)
    assert (cell("opened-unique-all"), cell("opened-unique-human"), cell("opened-total-all"),
            cell("opened-total-human")) == (3, 2, 4, 3)
    assert (cell("clicked-unique-all"), cell("clicked-total-human"), cell("unsubscribed")) == (2, 2, 1)
    spec = json.loads(re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>',
                                page, re.S).group(1))
    assert len(spec["x"]) == 3 and spec["x"] == sorted(spec["x"])  # three hours, zeros filled between
    assert spec["values"] == [[5, 0, 0], [0, 3, 0], [0, 0, 2]]  # delivered; opens and clicks without bots
    assert "https://shop.example/sale" in page

    response = client.get(f"/campaigns/{campaign_id}/report.csv")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.data.decode())))
    assert ["opened_total", "4", "3"] in rows and ["sent", "7", ""] in rows
    assert ["2", "'=HYPERLINK(\"x\")", "1", "1", "1", "1"] in rows  # a formula is not run by a spreadsheet

    # events after the count: the page shows that count with its time and recounts in the
    # background; its status line, asked again by htmx, reloads the page once that is done
    assert 'data-testid="report-status"' in page and "data-recounting" not in page
    later = [Event(uuid.uuid4(), "delivered", datetime.now(timezone.utc), tenant.account_id, db_id=tenant.db_ids[-1],
                   campaign_id=campaign_id, profile_id=uuid.uuid4().hex) for _ in range(2)]
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    try:
        store.insert("events", COLUMNS, [row(e) for e in later])
    finally:
        store.close()
    monkeypatch.setattr(reports, "RECOUNT_EVERY_SECONDS", 0)  # recount at once, not 10 s after the count
    page = client.get(f"/campaigns/{campaign_id}/report").data.decode()
    assert 'data-recounting="1"' in page and 'hx-trigger="every' in page and cell("sent") == 7
    wait_for(lambda: client.get(f"/campaigns/{campaign_id}/report", headers={"HX-Request": "true"})
             .headers.get("HX-Refresh") == "true", what="the recount to finish")
    page = client.get(f"/campaigns/{campaign_id}/report").data.decode()
    assert "data-recounting" not in page and (cell("sent"), cell("delivered")) == (9, 7)
