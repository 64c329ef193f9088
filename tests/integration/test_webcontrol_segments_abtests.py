"""webcontrol's segment builder with nested groups, on the real stores: a segment saved through
the API with nested and/or/not groups opens in the builder and saves back unchanged; its live
count is the API's count; groups are added and removed inside groups; a changed row inside a
nested group is stored where it is."""

from __future__ import annotations

import re

import pytest

from altcraft import registry
from altcraft.services.api import create_app as create_api
from altcraft.web.control import create_app
from tests.lib.api import Client
from tests.lib.harness import migrated_config
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


@pytest.fixture(scope="module")
def shop(harness, tmp_path_factory):
    """One account for the module: profiles, a panel writer signed in, an API token."""
    from altcraft.wiring import Platform
    config = migrated_config(harness, tmp_path_factory.mktemp("akd"))
    platform = Platform(config)
    tenant = make_tenant(platform, profiles=0)
    people = platform.profiles(tenant.account_id, tenant.db_ids[0])
    for i, (city, first, last) in enumerate(PEOPLE):
        people.add({"email": f"g{i}@example.com", "first_name": first, "last_name": last,
                    **({"city": city} if city else {})})
    token, _ = platform.tokens.create("account", account_id=tenant.account_id)
    api = Client(create_api(config, registry.get("api")).test_client(), token)
    panel = create_app(config, registry.get("webcontrol")).test_client()
    csrf = signin(panel, tenant.writer)
    yield tenant, platform, api, panel, csrf
    platform.close()


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
