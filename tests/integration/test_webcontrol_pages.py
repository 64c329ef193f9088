"""webcontrol's pages on the real stores: keyset paging through every profile exactly once,
search by the beginning of the e-mail, the domain's validation shown on the form, the
dashboard's totals from the hourly statistics."""

from __future__ import annotations

import re

import pytest

from altcraft import registry
from altcraft.web.control import create_app
from altcraft.web.control.pages import PAGE_SIZE
from altcraft.web.control.segment_pages import condition_from_form
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


COUNT = re.compile(r'data-testid="segment-count">(\d+)<')


def test_the_segment_builders_live_count_is_the_domains_and_the_api_counts_the_same(config, platform):
    tenant = make_tenant(platform, profiles=0)
    db_id = tenant.db_ids[0]
    people = platform.profiles(tenant.account_id, db_id)
    cities = ["Kazan"] * 7 + ["Omsk"] * 5 + [None] * 8
    for i, city in enumerate(cities):
        people.add({"email": f"c{i:02d}@example.com", "first_name": f"Name{i:02d}", **({"city": city} if city else {})})
    client = create_app(config, registry.get("webcontrol")).test_client()
    token = signin(client, tenant.writer)
    builder = {"join": "or", "field_0": "city", "op_0": "eq", "value_0": "Kazan",
               "field_1": "city", "op_1": "eq", "value_1": "Omsk"}
    live = client.get(f"/databases/{db_id}/segments/count", query_string=builder, headers={"HX-Request": "true"})
    assert live.status_code == 200 and b"<html" not in live.data
    assert COUNT.search(live.data.decode()).group(1) == "12"
    assert live.data.decode().count('href="/databases/') == 5  # the sample: five of them
    only_kazan = client.get(f"/databases/{db_id}/segments/count", query_string={**builder, "join": "and", "field_1": ""})
    assert COUNT.search(only_kazan.data.decode()).group(1) == "7"
    # a bad condition: the domain's message, no count
    bad = client.get(f"/databases/{db_id}/segments/count", query_string={"field_0": "city", "op_0": "in", "value_0": ""})
    assert b"a non-empty list" in bad.data and not COUNT.search(bad.data.decode())

    created = client.post(f"/databases/{db_id}/segments/new", data={**builder, "name": "Volga", "kind": "dynamic",
                                                                    "csrf_token": token})
    assert created.status_code == 302
    segment_id = int(created.headers["Location"].rsplit("/", 1)[1])
    segments = platform.segments(tenant.account_id)
    assert segments.get(segment_id)["condition"] == {"or": [{"field": "city", "op": "eq", "value": "Kazan"},
                                                            {"field": "city", "op": "eq", "value": "Omsk"}]}
    assert segments.count(segment_id) == 12  # what the API's segments/count answers
    page = client.get(f"/segments/{segment_id}").data.decode()
    assert COUNT.search(page).group(1) == "12"

    reader = create_app(config, registry.get("webcontrol")).test_client()
    reader_token = signin(reader, tenant.reader)
    assert b'data-testid="segment-create"' not in reader.get(f"/databases/{db_id}/segments/new").data
    refused = reader.post(f"/databases/{db_id}/segments/new", data={**builder, "name": "x", "csrf_token": reader_token})
    assert refused.status_code == 403 and len(segments.list()) == 1


def test_the_live_count_stops_at_its_limit_and_says_so_while_the_api_counts_exactly(config, platform, monkeypatch):
    from altcraft.domain.segments import Segments
    from altcraft.web.control import segment_pages

    tenant = make_tenant(platform, profiles=0)
    db_id = tenant.db_ids[0]
    people = platform.profiles(tenant.account_id, db_id)
    people.upsert_prepared([people.prepare({"email": f"k{i:02d}@example.com", "city": "Kazan"}, require_key=True)
                            for i in range(12)])
    client = create_app(config, registry.get("webcontrol")).test_client()
    signin(client, tenant.writer)
    kazan = {"field_0": "city", "op_0": "eq", "value_0": "Kazan"}

    monkeypatch.setattr(segment_pages, "LIVE_COUNT_LIMIT", 12)  # exactly at the limit: still exact
    html = client.get(f"/databases/{db_id}/segments/count", query_string=kazan).data.decode()
    assert COUNT.search(html).group(1) == "12" and 'data-testid="segment-count-bound"' not in html

    monkeypatch.setattr(segment_pages, "LIVE_COUNT_LIMIT", 10)  # past it: "more than", and why
    asked = []
    match = Segments.match
    monkeypatch.setattr(Segments, "match", lambda self, *a, **kw: asked.append(kw.get("limit")) or match(self, *a, **kw))
    html = client.get(f"/databases/{db_id}/segments/count", query_string=kazan).data.decode()
    assert asked == [11]  # the store is asked to stop counting one past the limit
    assert re.search(r'data-testid="segment-count" data-over="1">more than 10<', html)
    assert 'data-testid="segment-count-bound"' in html and html.count('href="/databases/') == 5
    # the domain stopped counting at the limit it was given; the API's count is exact
    segments = platform.segments(tenant.account_id)
    assert segments.match(db_id, condition_from_form(kazan), 5, limit=11)[0] == 11
    segment = segments.add("Kazan", db_id, condition_from_form(kazan))
    assert segments.count(segment["id"]) == 12


def test_the_builders_not_and_activity_rows_count_as_the_domain_does(config, platform):
    import uuid
    from datetime import datetime, timedelta, timezone

    from altcraft.domain.events import COLUMNS, Event, row
    from altcraft.stores.analytics import Analytics

    tenant = make_tenant(platform, profiles=0)
    db_id = tenant.db_ids[0]
    people = platform.profiles(tenant.account_id, db_id)
    ids = [people.add({"email": f"a{i:02d}@example.com", **({"city": "Kazan"} if i < 4 else {})})["id"]
           for i in range(10)]
    at = datetime.now(timezone.utc) - timedelta(days=2)
    opened = [Event(uuid.uuid4(), "open", at, tenant.account_id, db_id=db_id, campaign_id=5, profile_id=p)
              for p in ids[2:5]]  # two of Kazan, one not
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    try:
        store.insert("events", COLUMNS, [row(e) for e in opened])
    finally:
        store.close()
    client = create_app(config, registry.get("webcontrol")).test_client()
    signin(client, tenant.writer)

    def live(form: dict) -> str:
        answer = client.get(f"/databases/{db_id}/segments/count", query_string=form, headers={"HX-Request": "true"})
        found = COUNT.search(answer.data.decode())
        assert found, answer.data.decode()[-400:]
        return found.group(1)

    kazan = {"field_0": "city", "op_0": "eq", "value_0": "Kazan"}
    assert live({**kazan, "not_0": "1"}) == "6"
    assert live({"field_0": "activity:opened", "value_0": "30"}) == "3"
    assert live({"field_0": "activity:opened", "value_0": "30, 5"}) == "3"
    assert live({"field_0": "activity:opened", "value_0": "30, 6"}) == "0"  # another campaign
    assert live({"field_0": "activity:opened", "value_0": "1"}) == "0"      # two days ago
    both = {**kazan, "field_1": "activity:opened", "value_1": "", "not_1": "1"}
    assert live(both) == "2"  # of Kazan, not opened in 30 days
    condition = condition_from_form(both)
    assert platform.segments(tenant.account_id).match(db_id, condition, 0)[0] == 2  # the domain's count
    # the operators are shown by name, not code
    page = client.get(f"/databases/{db_id}/segments/new").data.decode()
    assert '<option value="within_days">is within the last N days</option>' in page
    assert '<option value="activity:clicked">clicked in a message</option>' in page


def test_template_errors_show_their_line_and_the_preview_shows_the_chosen_profile(config, platform):
    import html as htmllib
    tenant = make_tenant(platform, profiles=0)
    db_id = tenant.db_ids[0]
    people = platform.profiles(tenant.account_id, db_id)
    people.add({"email": "olga@example.com", "first_name": "Olga"})
    people.add({"email": "boris@example.com", "first_name": "Boris"})
    client = create_app(config, registry.get("webcontrol")).test_client()
    token = signin(client, tenant.writer)

    broken = client.post("/templates/new", data={"name": "Hello", "subject": "Hi", "text": "",
                                                 "html": "<p>one</p>\n<p>two</p>\n{% if x %}<p>never closed</p>",
                                                 "csrf_token": token})
    assert broken.status_code == 400
    assert b'data-testid="html-error"' in broken.data and b"at line 3" in broken.data
    assert platform.templates(tenant.account_id).list() == []

    evil = ('<p>Hello {{ first_name }}</p><script>alert(1)</script>'
            '<img src="x" onerror="alert(2)">')
    created = client.post("/templates/new", data={"name": "Hello", "subject": "For {{ first_name }}",
                                                  "html": evil, "text": "", "csrf_token": token})
    assert created.status_code == 302
    url = created.headers["Location"]
    preview = client.get(f"{url}/preview", query_string={"db_id": db_id, "profile": "olga@example.com"},
                         headers={"HX-Request": "true"}).data.decode()
    assert '<span data-testid="preview-subject">For Olga</span>' in preview
    (frame,) = re.findall(r"<iframe\b[^>]*>", preview)
    assert re.search(r"\ssandbox\s", frame) and "allow-scripts" not in frame
    # the HTML comes from its own route, under the preview's CSP (no scripts)
    source = htmllib.unescape(re.search(r'\ssrc="([^"]*)"', frame).group(1))
    served = client.get(source)
    assert "sandbox" in served.headers["Content-Security-Policy"].split("; ")
    srcdoc = served.data.decode()
    assert "<p>Hello Olga</p>" in srcdoc and "Boris" not in srcdoc
    assert "<script>alert(1)</script>" in srcdoc  # kept as written, but in a frame where nothing runs
    other = client.get(f"{url}/preview/frame", query_string={"db_id": db_id, "profile": "boris@example.com"})
    assert "Hello Boris" in other.data.decode()
    missing = client.get(f"{url}/preview", query_string={"db_id": db_id, "profile": "nobody@example.com"})
    assert b'data-testid="preview-error"' in missing.data

    # editing: the domain's errors again, nothing stored on error; then saved
    template_id = int(url.rsplit("/", 1)[1])
    bad_edit = client.post(url, data={"name": "Hello", "subject": "{{ oops", "html": "<p>x</p>", "text": "",
                                      "csrf_token": token})
    assert bad_edit.status_code == 400 and b'id="subject-error"' in bad_edit.data and b"line 1" in bad_edit.data
    assert platform.templates(tenant.account_id).get(template_id)["subject"] == "For {{ first_name }}"
    saved = client.post(url, data={"name": "Hello", "subject": "New {{ first_name }}", "html": "<p>x</p>", "text": "",
                                   "csrf_token": token})
    assert saved.status_code == 200 and b'data-testid="template-saved"' in saved.data
    assert platform.templates(tenant.account_id).get(template_id)["subject"] == "New {{ first_name }}"


def test_segment_and_template_pages_in_russian(config, platform):
    from tests.lib.webpanel import PASSWORD
    tenant = make_tenant(platform, profiles=1, segments=1, templates=1)
    platform.users.update(platform.users.verify(tenant.writer, PASSWORD)["id"], lang="ru")
    client = create_app(config, registry.get("webcontrol")).test_client()
    signin(client, tenant.writer)
    db_id, template_id = tenant.db_ids[0], tenant.template_ids[0]
    for url, words in (("/segments", ["Сегменты", "Новый сегмент в базе", "динамический"]),
                       (f"/databases/{db_id}/segments/new", ["все условия", "Условие"]),
                       (f"/segments/{tenant.segment_ids[0]}", ["База профилей", "Несколько его профилей"]),
                       ("/templates", ["Шаблоны", "Новый шаблон"]),
                       (f"/templates/{template_id}", ["Тема", "Предпросмотр", "Сохранить"])):
        page = client.get(url)
        assert page.status_code == 200, url
        text = page.data.decode()
        for word in words:
            assert word in text, (url, word)


def test_search_by_phone_and_key_filter_by_status_edit_and_unsubscribe(config, platform):
    tenant = make_tenant(platform, profiles=0)
    db_id = tenant.db_ids[0]
    people = platform.profiles(tenant.account_id, db_id)
    rows = [people.prepare({"email": f"s{i:02d}@example.com", "phone": f"+7916555{i:04d}", "first_name": "Anna"},
                           require_key=True) for i in range(12)]
    people.upsert_prepared(rows)
    ids = {doc["data"]["email"]: doc["_id"] for doc in people.collection.find({}, {"data.email": 1})}
    for i in range(0, 12, 3):  # four of them subscribed, one of those then unsubscribed
        people.set_subscription(ids[f"s{i:02d}@example.com"], 1, "email", "subscribed")
    people.set_subscription(ids["s09@example.com"], 1, "email", "unsubscribed")
    client = create_app(config, registry.get("webcontrol")).test_client()
    token = signin(client, tenant.writer)
    url = f"/databases/{db_id}/profiles"

    def found(query: str) -> set[str]:
        page = client.get(f"{url}?{query}")
        assert page.status_code == 200, (query, page.status_code)
        return set(ROW.findall(page.data.decode()))

    assert found("phone=%2B7 916 555 001") == {ids[f"s{i:02d}@example.com"] for i in range(10, 12)}
    assert found("phone=79165550003") == {ids["s03@example.com"]}
    assert found("key=S05@Example.com") == {ids["s05@example.com"]}  # normalised as the key is
    assert found("status=subscribed") == {ids[f"s{i:02d}@example.com"] for i in (0, 3, 6)}
    assert found("status=unsubscribed&email=s0") == {ids["s09@example.com"]}
    assert found("status=subscribed&phone=7916555000") == {ids[f"s{i:02d}@example.com"] for i in (0, 3, 6)}
    # a value the domain cannot read is named by its box
    bad = client.get(f"{url}?key=not-an-address")
    assert bad.status_code == 400 and 'id="search-key-error"' in bad.data.decode()
    assert 'id="search-phone-error"' in client.get(f"{url}?phone=abc").data.decode()
    assert client.get(f"{url}?status=gone").status_code == 400

    # the card: edit with the domain's validation by field; unsubscribe through set_subscription
    card = f"{url}/{ids['s00@example.com']}"
    wrong = client.post(card, data={"phone": "12", "first_name": "Olga", "csrf_token": token})
    assert wrong.status_code == 400 and 'id="phone-error"' in wrong.data.decode()
    assert people.get(profile_id=ids["s00@example.com"])["data"]["first_name"] == "Anna"  # nothing stored
    taken = client.post(card, data={"email": "s01@example.com", "csrf_token": token})
    assert taken.status_code == 409 and 'id="email-error"' in taken.data.decode()
    done = client.post(card, data={"first_name": "Olga", "city": "Tver", "csrf_token": token})
    assert done.status_code == 200 and b'data-testid="profile-saved"' in done.data
    data = people.get(profile_id=ids["s00@example.com"])["data"]
    assert (data["first_name"], data["city"], data["email"]) == ("Olga", "Tver", "s00@example.com")
    gone = client.post(f"{card}/unsubscribe", data={"resource_id": "1", "channel": "email", "csrf_token": token})
    assert gone.status_code == 200 and b'data-testid="profile-unsubscribed"' in gone.data
    (subscription,) = people.get(profile_id=ids["s00@example.com"])["subscriptions"]
    assert subscription["status"] == "unsubscribed"
    assert found("status=subscribed") == {ids[f"s{i:02d}@example.com"] for i in (3, 6)}
    bad = client.post(f"{card}/unsubscribe", data={"resource_id": "1", "channel": "fax", "csrf_token": token})
    assert bad.status_code == 400 and b"channel: one of" in bad.data
