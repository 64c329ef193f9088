"""Segments, templates, senders and campaigns through the API, against the real stores."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from altcraft.stores.analytics import Analytics
from tests.lib.api import make_account

pytestmark = pytest.mark.integration


@pytest.fixture
def shop(admin):
    account, client = make_account(admin, "marketing")
    db = client.ok("databases/add", name="main", fields=[{"name": "score", "type": "integer"}])
    rows = [{"email": f"p{i}@example.com", "first_name": "Anna", "city": "Kazan" if i % 2 else "Omsk",
             "score": i, "birthday": (datetime.now() - timedelta(days=365 * (20 + i))).date().isoformat()}
            for i in range(10)]
    client.ok("profiles/import_batch", db_id=db["id"], data=rows, subscribe_resource_id=1)  # the batch method since #16
    return account, client, db


def test_segment_conditions_count_what_they_say(shop, config):
    account, client, db = shop

    def count(condition):
        segment = client.ok("segments/add", name=uuid.uuid4().hex, db_id=db["id"], condition=condition)
        return client.ok("segments/count", id=segment["id"])["count"]

    assert count({}) == 10
    assert count({"field": "city", "op": "eq", "value": "Kazan"}) == 5
    assert count({"field": "score", "op": "between", "value": [2, "4"]}) == 3
    assert count({"and": [{"field": "city", "op": "eq", "value": "Kazan"},
                          {"field": "score", "op": "gte", "value": 5}]}) == 3
    assert count({"or": [{"field": "score", "op": "in", "value": [0, 9]}, {"field": "city", "op": "ne", "value": "Kazan"}]}) == 6
    assert count({"not": {"field": "city", "op": "eq", "value": "Kazan"}}) == 5
    assert count({"field": "phone", "op": "exists", "value": False}) == 10
    assert count({"field": "birthday", "op": "older_than_days", "value": 365 * 25}) == 4  # i = 6..9
    assert count({"field": "birthday", "op": "within_days", "value": 365 * 22}) == 3  # i = 0..2

    # activity: profiles that opened campaign 77 in the last week (events in ClickHouse)
    from altcraft.schema import migrate as migration
    migration.run(config)
    profiles = [client.ok("profiles/get", db_id=db["id"], email=f"p{i}@example.com")["id"] for i in (1, 2)]
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    try:
        store.insert("events", ("event_id", "event_time", "account_id", "kind", "campaign_id", "profile_id"),
                     [(uuid.uuid4(), datetime.utcnow(), account["id"], "open", 77, pid) for pid in profiles]
                     + [(uuid.uuid4(), datetime.utcnow(), account["id"] + 1000, "open", 77, "someone-else")])
    finally:
        store.close()
    assert count({"activity": "opened", "campaign_id": 77, "days": 7}) == 2
    assert count({"and": [{"activity": "opened", "days": 7}, {"field": "city", "op": "eq", "value": "Kazan"}]}) == 1
    assert count({"activity": "clicked", "days": 7}) == 0

    static = client.ok("segments/add", name="static kazan", db_id=db["id"], kind="static",
                       condition={"field": "city", "op": "eq", "value": "Kazan"})
    assert static["count"] == 5


def test_bad_segment_conditions_name_the_place(shop):
    _, client, db = shop
    for condition, text in (
        ({"field": "shoe", "op": "eq", "value": 1}, "condition.field: 'shoe' is not a field"),
        ({"field": "score", "op": "like", "value": 1}, "condition.op: one of"),
        ({"and": [{"field": "score", "op": "gt", "value": "many"}]}, "condition.and[0].value: not an integer"),
        ({"activity": "opened", "days": 0}, "condition.days"),
        ({"nonsense": 1}, "condition: needs one of"),
    ):
        status, body = client("segments/add", name="bad", db_id=db["id"], condition=condition)
        assert status == 400 and body["error_text"].startswith(text), body


def test_template_preview_and_sandbox(shop):
    _, client, db = shop
    template = client.ok("templates/add", name="welcome", subject="Hi {{ first_name }}",
                         html="<p>{{ city }}, {{ nickname | default('friend') }}</p><a href='https://x.example/'>x</a>")
    profile = client.ok("profiles/get", db_id=db["id"], email="p1@example.com")
    preview = client.ok("templates/preview", id=template["id"], db_id=db["id"], profile_id=profile["id"])
    assert preview["rcpt"] == "p1@example.com" and "Subject: Hi Anna" in preview["message"]
    status, body = client("templates/add", name="evil", subject="x",
                          html="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert status == 200  # it compiles; rendering it is what the sandbox refuses
    status, body = client("templates/preview", id=body["data"]["id"], db_id=db["id"], profile_id=profile["id"])
    assert status == 400 and body["error_text"].startswith("html: not allowed in a template")
    status, body = client("templates/add", name="broken", subject="x", html="{% if %}")
    assert status == 400 and body["error_text"].startswith("html: template syntax error at line 1")


def test_campaign_states_and_sender_assignment(shop, admin):
    account, client, db = shop
    sender = admin.ok("admin/senders/save", name="news", from_email="News@Shop.example", dkim_algorithm="ed25519")
    assert sender["dkim_dns_record"].startswith("v=DKIM1; k=ed25519; p=") and "dkim_private_key" not in sender
    segment = client.ok("segments/add", name="all", db_id=db["id"])
    template = client.ok("templates/add", name="t", subject="s", text="hello")
    params = dict(name="c", db_id=db["id"], segment_id=segment["id"], template_id=template["id"], sender_id=sender["id"])
    status, body = client("campaigns/add", **params)
    assert status == 404 and body["error_text"] == f"sender {sender['id']} not found"  # not assigned yet
    admin.ok("admin/senders/assign", id=sender["id"], account_id=account["id"])
    campaign = client.ok("campaigns/add", **params, schedule={"type": "once", "at": "2099-01-01T09:00:00+03:00"})
    assert campaign["state"] == "draft"
    started = client.ok("campaigns/start", id=campaign["id"])
    assert started["state"] == "scheduled" and started["next_run"].startswith("2099-01-01T06:00:00")
    assert client.ok("campaigns/pause", id=campaign["id"])["state"] == "paused"
    status, body = client("campaigns/pause", id=campaign["id"])
    assert status == 409 and "is paused" in body["error_text"]
    assert client.ok("campaigns/update", id=campaign["id"], name="renamed")["name"] == "renamed"
    assert client.ok("campaigns/resume", id=campaign["id"])["state"] == "sending"
    status, body = client("campaigns/delete", id=campaign["id"])
    assert status == 409
    assert client.ok("campaigns/cancel", id=campaign["id"])["state"] == "cancelled"
    client.ok("campaigns/delete", id=campaign["id"])
    regular = client.ok("campaigns/add", **params, schedule={"type": "regular", "cron": "0 9 * * 1"})
    assert client.ok("campaigns/start", id=regular["id"])["state"] == "scheduled"
    status, body = client("campaigns/add", **params, schedule={"type": "regular", "cron": "every monday"})
    assert status == 400 and body["error_text"].startswith("schedule.cron")
    ab = {"variants": [{"subject": "A"}, {"template_id": template["id"]}], "test_share": 0.2, "wait_seconds": 3600}
    assert client.ok("campaigns/add", **params, ab=ab)["ab"]["phase"] == "test"
    status, body = client("campaigns/add", **params, ab={**ab, "variants": [{"subject": "A"}]})
    assert status == 400 and body["error_text"].startswith("ab.variants: a list of 2 to 4")
    status, body = client("campaigns/add", **params, ab=ab, schedule={"type": "regular", "cron": "0 9 * * 1"})
    assert status == 400 and body["error_text"].startswith("ab: an A/B test needs a one-off schedule")
    status, body = client("campaigns/add", **params, ab={**ab, "variants": [{"subject": "A"}, {"template_id": 10**6}]})
    assert status == 404

    admin.ok("admin/senders/delete", id=sender["id"])
    assert [s["id"] for s in admin.ok("admin/senders/list/")] == []
    admin.ok("admin/senders/undelete/", id=sender["id"])
    assert [s["id"] for s in admin.ok("admin/senders/list/")] == [sender["id"]]
    status, body = admin("admin/senders/queue/stats/", id=sender["id"])
    assert status == 503 and body["error_text"].startswith("akmtad is not reachable")  # akmtad not started here
