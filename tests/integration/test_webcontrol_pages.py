"""webcontrol's pages on the real stores: keyset paging through every profile exactly once,
search by the beginning of the e-mail, the domain's validation shown on the form, the
dashboard's totals from the hourly statistics."""

from __future__ import annotations

import re

import pytest

from altcraft import registry
from altcraft.web.control import create_app
from altcraft.web.control.pages import PAGE_SIZE
from tests.lib.webpanel import make_tenant, signin

pytestmark = pytest.mark.integration
ROW = re.compile(r'href="/databases/\d+/profiles/([0-9a-f]{32})"')
NEXT = re.compile(r'href="([^"]+)" data-testid="next-page"')


def test_keyset_pages_show_every_profile_once_in_id_order(config, platform):
    tenant = make_tenant(platform, profiles=0)
    db_id = tenant.db_ids[0]
    people = platform.profiles(tenant.account_id, db_id)
    rows = [people.prepare({"email": f"user{i:03d}@example.com"}, require_key=True)
            for i in range(PAGE_SIZE * 2 + 7)]
    people.upsert_prepared(rows)
    client = create_app(config, registry.get("webcontrol")).test_client()
    signin(client, tenant.writer)

    seen, url, pages = [], f"/databases/{db_id}/profiles", 0
    while url:
        page = client.get(url.replace("&amp;", "&"))
        assert page.status_code == 200
        html = page.data.decode()
        seen += ROW.findall(html)
        pages += 1
        found = NEXT.search(html)
        url = found.group(1) if found else None
        if pages > 1:
            assert 'data-testid="first-page"' in html
    assert pages == 3
    assert len(seen) == len(rows) and len(set(seen)) == len(rows)
    assert seen == sorted(seen)

    # search: the beginning of the address, case-insensitive (addresses are stored lowercased)
    found = ROW.findall(client.get(f"/databases/{db_id}/profiles?email=USER02").data.decode())
    assert len(found) == 10
    assert ROW.findall(client.get(f"/databases/{db_id}/profiles?email=user1.*").data.decode()) == []
    partial = client.get(f"/databases/{db_id}/profiles?email=user00", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and b"<html" not in partial.data and len(ROW.findall(partial.data.decode())) == 10


def test_the_domains_validation_is_shown_on_the_form(config, platform):
    tenant = make_tenant(platform, profiles=0)
    client = create_app(config, registry.get("webcontrol")).test_client()
    token = signin(client, tenant.writer)
    bad = client.post("/databases", data={"name": "bad/name", "key": "email", "csrf_token": token})
    assert bad.status_code == 400 and b"name: 1-100 letters" in bad.data
    taken = client.post("/databases", data={"name": platform.databases(tenant.account_id).list()[0].name,
                                            "key": "email", "csrf_token": token})
    assert taken.status_code == 409 and b"already exists" in taken.data
    db_id = tenant.db_ids[0]
    wrong = client.post(f"/databases/{db_id}/profiles", data={"email": "not-an-address", "csrf_token": token})
    assert wrong.status_code == 400 and b"email" in wrong.data
    assert platform.profiles(tenant.account_id, db_id).collection.count_documents({}) == 0


def test_the_profile_card_shows_its_events_newest_first_and_only_its_accounts(config, platform):
    import uuid
    from datetime import datetime, timedelta, timezone

    from altcraft.domain.events import COLUMNS, Event, row
    from altcraft.stores.analytics import Analytics

    tenant = make_tenant(platform, profiles=1)
    db_id, profile_id = tenant.db_ids[0], tenant.profile_ids[0]
    client = create_app(config, registry.get("webcontrol")).test_client()
    signin(client, tenant.writer)
    card = client.get(f"/databases/{db_id}/profiles/{profile_id}")
    assert card.status_code == 200 and b'data-testid="no-events"' in card.data

    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    delivered, opened, clicked = (
        Event(uuid.uuid4(), kind, start + timedelta(minutes=i), tenant.account_id, db_id=db_id,
              campaign_id=41, profile_id=profile_id, url="https://shop.example/sale" if kind == "click" else "")
        for i, kind in enumerate(("delivered", "open", "click")))
    foreign = Event(uuid.uuid4(), "open", start, tenant.account_id + 1000, profile_id=profile_id)
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    try:  # the click twice: a redelivered copy before ClickHouse merges it away
        store.insert("events", COLUMNS, [row(e) for e in (delivered, opened, clicked, clicked, foreign)])
    finally:
        store.close()

    html = client.get(f"/databases/{db_id}/profiles/{profile_id}").data.decode()
    table = html[html.index('data-testid="profile-events"'):html.index("</table>", html.index('data-testid="profile-events"'))]
    kinds = re.findall(r"<tr><td>[^<]*</td><td>(\w+)", table)
    assert kinds == ["click", "open", "delivered"]
    assert "https://shop.example/sale" in table
