"""Campaign reports and hourly statistics on the real ClickHouse 18.16 and SSDB stand-in:
through the API (campaigns/report, reports/hourly) and `aktool report`."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from altcraft import registry
from altcraft.domain import events
from altcraft.domain.tracking import Link
from altcraft.services.api import create_app
from altcraft.wiring import Platform
from tests.lib.cli import run
from tests.lib.stand import campaign_id
from tests.lib.wait import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_campaign_report_through_api_and_aktool(stand):
    platform = Platform(stand.config)
    account = platform.accounts.save(name=f"rep{campaign_id()}")
    other = platform.accounts.save(name=f"other{campaign_id()}")
    token, _ = platform.tokens.create("account", account["id"])
    other_token, _ = platform.tokens.create("account", other["id"])
    a = account["id"]
    # a campaign document (#4's domain): the report answers only for the account's own campaigns
    campaign = platform.campaigns.add(a, "autumn sale", 1, 0, 0, 0)["id"]
    # the middle of the current hour, minus a few minutes: every event in one hour bucket,
    # after which a second bucket follows an hour later
    now = datetime.now(timezone.utc)
    t0 = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2) + timedelta(minutes=30)

    def ev(kind, profile, seconds=0, *, account=a, campaign=campaign, link_id=0, url="", is_bot=False,
           bot_reason=""):
        """(event_id, routing key, body) from the encoder trkaction or akmtad uses for the kind."""
        now = (t0 + timedelta(seconds=seconds)).timestamp()
        if kind in events.ACTION_KINDS:
            return events.action(Link(kind, account, 1, 1, campaign, profile, link_id, url), kind, ip="",
                                 user_agent="", is_bot=is_bot, bot_reason=bot_reason, now=now)
        facts = events.DeliveryFacts(message_id=f"{uuid.uuid4()}@test", email="", account_id=account,
                                     sender_id=0, db_id=1, resource_id=1, campaign_id=campaign, profile_id=profile)
        return events.delivery(facts, kind, 1, ip="", detail="", now=now)

    copy = ev("click", "p1", 200, link_id=1, url="https://shop.example/a")
    stand.start("procactions")
    stand.publish([
        ev("delivered", "p1"), ev("delivered", "p2"), ev("delivered", "p3"), ev("deferred", "p4"),
        ev("delivered", "p4", 900), ev("bounced_hard", "p5"), ev("bounced_soft", "p6"), ev("dropped", "p7"),
        ev("open", "p1", 120), ev("open", "p1", 3700), ev("open", "p2", 130),
        ev("open", "p3", 140, is_bot=True, bot_reason="apple-mpp"),
        copy,
        copy,  # a redelivered copy
        ev("click", "p2", 300, link_id=2, url="https://shop.example/b"),
        ev("click", "p3", 141, link_id=1, url="https://shop.example/a", is_bot=True, bot_reason="scanner"),
        ev("unsubscribe", "p2", 400),
        ev("open", "p1", 100, campaign=campaign + 1),  # another campaign
        ev("open", "p1", 100, account=other["id"]),  # another account's campaign of the same id
    ])
    wait_for(lambda: stand.rows("campaign_id = %(c)s", {"c": campaign}) >= 18, what="the events in ClickHouse")
    assert stand.rows("campaign_id = %(c)s AND account_id = %(a)s", {"c": campaign, "a": other["id"]}) == 1
    time.sleep(1.5)  # the hourly statistics are written right after the batch

    api = create_app(stand.config, registry.get("api")).test_client()
    response = api.post("/api/v1.1/campaigns/report", json={"token": token, "id": campaign})
    assert response.status_code == 200, response.get_json()
    report = response.get_json()["data"]
    assert (report["sent"], report["delivered"], report["deferred"], report["dropped"]) == (7, 4, 1, 1)
    assert report["bounced"] == {"hard": 1, "soft": 1}
    assert report["opened"] == {"unique": {"all": 3, "human": 2}, "total": {"all": 4, "human": 3}}
    assert report["clicked"] == {"unique": {"all": 3, "human": 2}, "total": {"all": 3, "human": 2}}
    assert (report["unsubscribed"], report["complaints"]) == (1, 0)
    assert [(link["link_id"], link["url"], link["clicks"]["total"]) for link in report["links"]] == [
        (1, "https://shop.example/a", {"all": 2, "human": 1}),
        (2, "https://shop.example/b", {"all": 1, "human": 1})]
    hour = t0.replace(minute=0).strftime("%Y-%m-%dT%H:00:00Z")
    next_hour = (t0 + timedelta(hours=1)).replace(minute=0).strftime("%Y-%m-%dT%H:00:00Z")
    assert [slot["hour"] for slot in report["timeline"]] == [hour, next_hour]
    assert report["timeline"][0]["open"] == {"all": 3, "human": 2}
    assert report["timeline"][1] == {"hour": next_hour, "open": {"all": 1, "human": 1}}

    # another account's token cannot see the campaign (and its own event of that id stays out of ours)
    other_report = api.post("/api/v1.1/campaigns/report", json={"token": other_token, "id": campaign})
    assert other_report.status_code == 404 and other_report.get_json()["error"] == 404
    assert api.post("/api/v1.1/campaigns/report", json={"token": token}).status_code == 400

    # aktool says the same
    result = run("aktool", "report", "campaign", "--account", str(a), "--campaign", str(campaign), "--json",
                 config=stand.path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == report
    text = run("aktool", "report", "campaign", "--account", str(a), "--campaign", str(campaign), config=stand.path)
    assert "opened        unique 2 human / 3 all; total 3 human / 4 all" in text.stdout

    # hourly account statistics from SSDB (stats), as procactions recomputed them
    hourly = api.post("/api/v1.1/reports/hourly", json={"token": token, "hours": 4}).get_json()
    assert hourly["error"] == 0
    first = next(row for row in hourly["data"] if row["hour"] == hour)
    # per account: the open of its other campaign counts here too
    assert first["open"] == {"all": 4, "human": 3} and first["delivered"] == {"all": 4, "human": 4}
    assert first["click"] == {"all": 3, "human": 2} and first["unsubscribe"] == {"all": 1, "human": 1}
    result = run("aktool", "report", "hourly", "--account", str(a), "--hours", "4", "--json", config=stand.path)
    assert result.returncode == 0 and json.loads(result.stdout) == hourly["data"]
    platform.close()
