"""webcontrol's segment builder with nested groups and its A/B test pages, on the real stores.

Segments: a segment saved through the API with nested and/or/not groups opens in the builder
and saves back unchanged; its live count is the API's count; groups are added and removed
inside groups; a changed row inside a nested group is stored where it is.
A/B tests: the form stores what the API's campaigns/add stores; each refusal of the domain is
shown under its field and stores nothing; the report shows each variant's figures from
ClickHouse and the winner, the same as the API's campaigns/report."""

from __future__ import annotations

import re

import pytest

from altcraft import registry
from altcraft.services.api import create_app as create_api
from altcraft.web.control import create_app
from tests.lib.api import Client
from tests.lib.webpanel import form_fields, make_tenant, signin

pytestmark = pytest.mark.integration
COUNT = re.compile(r'data-testid="segment-count">(\d+)<')
# two levels of groups below the top one, "not" on a group and on rows, key order and value
# types as an API client wrote them (an "op" left out, numbers where the builder writes text)
NESTED = {"or": [
    {"and": [{"field": "city", "op": "eq", "value": "Kazan"},
             {"not": {"or": [{"field": "first_name", "value": "Boris"},
                             {"field": "last_name", "op": "in", "value": ["Petrov", "Ivanov"]}]}}]},
    {"not": {"field": "city", "op": "exists", "value": True}},
    {"and": [{"field": "city", "op": "eq", "value": "Omsk"}, {"field": "first_name", "op": "ne", "value": "Anna"}]}]}
PEOPLE = [("Kazan", "Anna", "Petrov"), ("Kazan", "Boris", "Sidorov"), ("Kazan", "Vera", "Sidorov"),
          ("Kazan", "Olga", "Ivanov"), ("Omsk", "Anna", "Orlov"), ("Omsk", "Gleb", "Orlov"), (None, "Ivan", "Popov")]


def _api(config, platform, account_id: int) -> Client:
    token, _ = platform.tokens.create("account", account_id=account_id)
    return Client(create_api(config, registry.get("api")).test_client(), token)


@pytest.fixture(scope="module")
def shop(stores):
    """An account with profiles, a panel writer signed in, an API token."""
    config, platform = stores
    tenant = make_tenant(platform, profiles=0)
    people = platform.profiles(tenant.account_id, tenant.db_ids[0])
    for i, (city, first, last) in enumerate(PEOPLE):
        people.add({"email": f"g{i}@example.com", "first_name": first, "last_name": last,
                    **({"city": city} if city else {})})
    panel = create_app(config, registry.get("webcontrol")).test_client()
    csrf = signin(panel, tenant.writer)
    return tenant, platform, _api(config, platform, tenant.account_id), panel, csrf


def _live(panel, db_id: int, form: dict) -> int:
    answer = panel.get(f"/databases/{db_id}/segments/count", query_string=form, headers={"HX-Request": "true"})
    found = COUNT.search(answer.data.decode())
    assert found, answer.data.decode()[-400:]
    return int(found.group(1))


def test_a_nested_segment_from_the_api_opens_in_the_builder_and_saves_back_unchanged(shop):
    tenant, platform, api, panel, csrf = shop
    db_id = tenant.db_ids[0]
    saved = api.ok("segments/add", name="nested", db_id=db_id, condition=NESTED)["saved_id"]
    count = api.ok("segments/count", id=saved)["count"]
    assert count == 3  # Vera of Kazan, Ivan without a city, Gleb of Omsk

    page = panel.get(f"/segments/{saved}/edit")
    assert page.status_code == 200
    form = form_fields(page.data, "segment-form")
    assert form["g0_g1_not"] == "1" and form["g0_g1_join"] == "or"  # the group inside a group
    assert _live(panel, db_id, form) == count  # the live count of the opened builder
    saved_back = panel.post(f"/segments/{saved}/edit", data={**form, "csrf_token": csrf})
    assert saved_back.status_code == 302
    stored = platform.segments(tenant.account_id).get(saved)["condition"]
    assert stored == NESTED and repr(stored) == repr(NESTED)  # key order and types too
    assert api.ok("segments/count", id=saved)["count"] == count

    # a row changed inside the nested group is stored in its place; the rest stays as it was
    form["g0_g1_value_0"] = "Vera"
    assert panel.post(f"/segments/{saved}/edit", data={**form, "csrf_token": csrf}).status_code == 302
    changed = platform.segments(tenant.account_id).get(saved)["condition"]
    assert changed["or"][0]["and"][1]["not"]["or"][0] == {"field": "first_name", "op": "eq", "value": "Vera"}
    assert changed["or"][1:] == NESTED["or"][1:] and changed["or"][0]["and"][0] == NESTED["or"][0]["and"][0]
    assert api.ok("segments/count", id=saved)["count"] == 3  # Boris now, not Vera


def test_groups_are_added_inside_groups_and_removed_and_the_domain_counts_them(shop):
    tenant, platform, api, panel, csrf = shop
    db_id = tenant.db_ids[0]
    new = panel.get(f"/databases/{db_id}/segments/new")
    form = form_fields(new.data, "segment-form")
    form.update(field_0="city", op_0="eq", value_0="Kazan")

    def edit(action: str) -> dict:
        answer = panel.get(f"/databases/{db_id}/segments/builder", query_string={**form, "edit": action},
                           headers={"HX-Request": "true"})
        assert answer.status_code == 200 and b"<html" not in answer.data
        return form_fields(f'<form data-testid="f">{answer.data.decode()}</form>', "f")

    form = edit("add_group:")          # a group in slot 5 of the top group
    assert form["group_5"] == "1" and form["g5_rows"] == "2" and form["field_0"] == "city"
    form = edit("add_group:g5_")       # and a group inside it
    assert form["g5_group_2"] == "1"
    form.update(g5_join="or", g5_not="1", g5_field_0="first_name", g5_value_0="Anna",
                g5_g2_field_0="last_name", g5_g2_value_0="Ivanov")
    assert _live(panel, db_id, form) == 2  # Kazan, neither Anna nor Ivanov: Boris and Vera
    created = panel.post(f"/databases/{db_id}/segments/new", data={**form, "name": "groups", "kind": "dynamic",
                                                                   "csrf_token": csrf})
    assert created.status_code == 302
    segment_id = int(created.headers["Location"].rsplit("/", 1)[1])
    assert platform.segments(tenant.account_id).get(segment_id)["condition"] == {"and": [
        {"field": "city", "op": "eq", "value": "Kazan"},
        {"not": {"or": [{"field": "first_name", "op": "eq", "value": "Anna"},
                        {"and": [{"field": "last_name", "op": "eq", "value": "Ivanov"}]}]}}]}
    assert api.ok("segments/count", id=segment_id)["count"] == 2

    form = edit("remove:g5_g2_")       # the inner group goes, with its condition
    assert "g5_group_2" not in form and not any(k.startswith("g5_g2_") for k in form)
    assert _live(panel, db_id, form) == 3  # Kazan, not Anna: Boris, Vera, Olga
    form = edit("remove:g5_")
    assert not any(k.startswith("g5_") for k in form) and _live(panel, db_id, form) == 4


def test_a_condition_the_builder_cannot_show_is_said_so_and_not_offered_for_saving(shop):
    tenant, platform, api, panel, csrf = shop
    odd = {"not": {"not": {"field": "city", "op": "eq", "value": "Kazan"}}}
    saved = api.ok("segments/add", name="double not", db_id=tenant.db_ids[0], condition=odd)["saved_id"]
    page = panel.get(f"/segments/{saved}/edit").data.decode()
    assert "cannot show this condition" in page and 'data-testid="segment-create"' not in page
    assert platform.segments(tenant.account_id).get(saved)["condition"] == odd


# -- A/B tests ------------------------------------------------------------------------------
FIELD_ERROR = re.compile(r'id="([a-z_0-9]+)-error"[^>]*>([^<]*)<')


@pytest.fixture(scope="module")
def ab_shop(stores):
    config, platform = stores
    tenant = make_tenant(platform, profiles=40, segments=1, templates=2, campaigns=("draft",))
    panel = create_app(config, registry.get("webcontrol")).test_client()
    csrf = signin(panel, tenant.writer)
    return tenant, config, platform, _api(config, platform, tenant.account_id), panel, csrf


def _ab_form(tenant, **changes) -> dict:
    return {"name": "subject test", "db_id": str(tenant.db_ids[-1]), "segment_id": str(tenant.segment_ids[-1]),
            "template_id": str(tenant.template_ids[0]), "sender": f"s:{tenant.sender_id}", "resource_id": "1",
            "schedule": "now", "variant_0_subject": "Spring sale", "variant_1_template": str(tenant.template_ids[1]),
            "test_share": "50", "wait_seconds": "3600", "metric": "opens", **changes}


def test_the_ab_form_shows_each_refusal_under_its_field_and_stores_nothing(ab_shop):
    tenant, config, platform, api, panel, csrf = ab_shop
    before = len(platform.campaigns.list(tenant.account_id))
    for changes, field, says in (
            ({"variant_1_template": ""}, "variants", "a list of 2 to 4 variants"),
            ({"variant_1_subject": "Also"}, "variant_1", 'exactly one of'),
            ({"variant_2_subject": "Spring sale"}, "variants", "the variants must differ"),
            ({"variant_3_subject": " " * 3 + "x" * 999}, "variant_3", "at most 998"),  # the third given, in row 4
            # the share is typed in percent: a fraction, all of the segment or words are refused
            ({"test_share": "0.2"}, "test_share", "in percent of the segment: a number from 1 to 99"),
            ({"test_share": "100"}, "test_share", "in percent of the segment: a number from 1 to 99"),
            ({"test_share": "a fifth"}, "test_share", "in percent of the segment: a number from 1 to 99"),
            ({"wait_seconds": "10"}, "wait_seconds", "60 to"),
            ({"metric": "replies"}, "metric", "one of opens, clicks"),
            ({"segment_id": ""}, "segment_id", "choose a segment")):
        answer = panel.post("/abtests/new", data={**_ab_form(tenant, **changes), "csrf_token": csrf})
        html = answer.data.decode()
        assert answer.status_code == 400, (changes, answer.status_code)
        shown = dict(FIELD_ERROR.findall(html))
        if field == "variants":
            assert says in re.search(r'data-testid="variants-error">([^<]*)<', html).group(1), (changes, html[-600:])
        else:
            assert says in shown.get(field, ""), (changes, shown)
    # another account's template as a variant (ids are per account: B's third is not A's): not
    # found, as the API answers
    other = make_tenant(platform, profiles=0, templates=3)
    answer = panel.post("/abtests/new", data={**_ab_form(tenant, variant_1_template=str(other.template_ids[-1])),
                                              "csrf_token": csrf})
    assert answer.status_code == 404
    assert len(platform.campaigns.list(tenant.account_id)) == before


def test_an_ab_test_made_in_the_panel_is_the_apis_and_its_report_shows_each_variant(ab_shop):
    from datetime import datetime, timedelta, timezone
    import uuid

    from altcraft.domain import abtest
    from altcraft.domain.events import COLUMNS, Event, row
    from altcraft.stores.analytics import Analytics

    tenant, config, platform, api, panel, csrf = ab_shop
    created = panel.post("/abtests/new", data={**_ab_form(tenant, metric="clicks"), "csrf_token": csrf})
    assert created.status_code == 302, FIELD_ERROR.findall(created.data.decode())
    cid = int(created.headers["Location"].rsplit("/", 1)[1])
    doc = platform.campaigns.get(tenant.account_id, cid)
    assert doc["ab"] == abtest.settings({"variants": [{"subject": "Spring sale"},
                                                      {"template_id": tenant.template_ids[1]}],
                                         "test_share": 0.5, "wait_seconds": 3600, "metric": "clicks"})
    through_api = api.ok("campaigns/get", id=cid)
    assert through_api["ab"] == {k: doc["ab"][k] for k in through_api["ab"]}
    page = panel.get(f"/abtests/{cid}").data.decode()
    assert 'data-testid="campaign-state">draft<' in page and "not chosen yet" in page
    assert 'data-testid="abtest-test-share">50%<' in page  # typed as 50 (percent), stored as 0.5
    assert f"/abtests/{cid}" in panel.get("/abtests").data.decode()
    # a campaign without a test has no A/B page
    assert panel.get(f"/abtests/{tenant.campaign_ids[0]}").status_code == 404

    # the test group: each profile's variant is the split's; deliveries to all of it, clicks by B's
    variant = {p: abtest.variant_of(cid, p, 0.5, 2) for p in tenant.profile_ids}
    group = [p for p, v in variant.items() if v is not None]
    b_group = [p for p in group if variant[p] == 1]
    assert b_group and len(b_group) < len(group)
    at = datetime.now(timezone.utc) - timedelta(hours=1)
    rows = [Event(uuid.uuid4(), "delivered", at, tenant.account_id, db_id=tenant.db_ids[-1], campaign_id=cid,
                  profile_id=p) for p in group]
    rows += [Event(uuid.uuid4(), "click", at, tenant.account_id, db_id=tenant.db_ids[-1], campaign_id=cid,
                   profile_id=p) for p in b_group]
    store = Analytics(config.CLICKHOUSE_SYSTEM)
    try:
        store.insert("events", COLUMNS, [row(e) for e in rows])
    finally:
        store.close()
    platform.campaigns.collection.update_one({"id": cid}, {"$set": {"ab.phase": "rest", "ab.winner": 1,
                                                                    "ab.scores": [0, len(b_group)]}})
    report = panel.get(f"/abtests/{cid}/report").data.decode()

    def cell(name: str, v: str) -> int:
        return int(re.search(rf'data-testid="abtest-{name}-{v}">(\d+)<', report).group(1))

    figures = {v: (cell("sent", v), cell("opened", v), cell("clicked", v)) for v in "AB"}
    assert figures == {"A": (len(group) - len(b_group), 0, 0), "B": (len(b_group), 0, len(b_group))}
    assert 'data-testid="abtest-report-winner">B<' in report
    from_api = api.ok("campaigns/report", id=cid)["ab"]  # the same figures through the API
    assert {v["variant"]: (v["sent"], v["opened"], v["clicked"]) for v in from_api["variants"]} == figures
    assert from_api["winner"] == "B"
