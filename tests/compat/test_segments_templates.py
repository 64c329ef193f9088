"""Segments, static segment membership and templates written as Altcraft's pages write them,
against the real API (issue #16). Each request cites its page; the assertions read only the
fields that page documents.
"""

from __future__ import annotations

import pytest

from altcraft.domain.segments import Segments
from tests.lib.compat import covers
from tests.lib.compat_api import account_api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def account(harness, tmp_path_factory):
    with account_api(harness, tmp_path_factory.mktemp("compat-segments") / "akd") as account:
        yield account


def _profiles(shop, db_id: int, *emails: str) -> list[str]:
    return [shop.ok("profiles/add", {"db_id": db_id, "data": {"email": email}})["profile_id"] for email in emails]


@covers("segments/add/", "segments/get/", "segments/update/", "profiles/segstatic/add",
        "profiles/segstatic/remove")
def test_static_segment_filled_by_hand(account):
    shop, db_id = account.shop, account.db_id
    anna, boris, vera = _profiles(shop, db_id, "anna@example.com", "boris@example.com", "vera@example.com")
    # https://guides.altcraft.com/en/developer-guide/segments/2195594 : a static segment is
    # {name, is_static: true, list_id, is_refresh_daily: false}; data: {saved_id}
    saved_id = shop.ok("segments/add/", {"name": "Segment 2", "is_static": True, "list_id": db_id,
                                         "is_refresh_daily": False, "format": "json"})["data"]["saved_id"]
    # https://guides.altcraft.com/en/developer-guide/static-segments/9407390 : segment_id, db_id,
    # profile_id, skip_triggers, format; {error, error_text}
    for profile_id in (anna, boris, vera):
        answer = shop.ok("profiles/segstatic/add", {"segment_id": saved_id, "db_id": db_id, "profile_id": profile_id,
                                                    "skip_triggers": True, "format": "json"})
        assert answer["error_text"]
    shop.ok("profiles/segstatic/add", {"segment_id": saved_id, "db_id": db_id, "profile_id": anna})  # again: once
    shop.ok("profiles/segstatic/remove", {"segment_id": saved_id, "db_id": db_id, "profile_id": boris})
    # https://guides.altcraft.com/en/developer-guide/profiles/import : add_to_segments, remove_from_segments
    gleb = shop.ok("profiles/import", {"db_id": db_id, "data": {"email": "gleb@example.com"},
                                       "add_to_segments": [saved_id]})["profile_id"]
    shop.ok("profiles/import", {"db_id": db_id, "data": {"email": "gleb@example.com"},
                                "remove_from_segments": [saved_id]})
    assert shop.refused("profiles/import", {"db_id": db_id, "data": {"email": "dina@example.com"},
                                            "add_to_segments": [saved_id + 1000]}).startswith("add_to_segments[0]:")
    shop.refused("profiles/get/", {"db_id": db_id, "email": "dina@example.com"}, 404)  # nothing written
    assert gleb

    # https://guides.altcraft.com/en/developer-guide/segments/2195598 : id, format; data {id, name, count, segment}
    got = shop.ok("segments/get/", {"id": saved_id, "format": "json"})["data"]
    assert (got["id"], got["name"], got["count"], got["segment"]) == (saved_id, "Segment 2", 2, [])
    # this platform's count of a segment filled by hand keeps its members (no condition replaces them)
    assert shop.ok("segments/count", {"id": saved_id})["data"]["count"] == 2

    # https://guides.altcraft.com/en/developer-guide/segments/2195596 : the static form
    # {id, list_id, name, is_static, is_refresh_daily}
    shop.ok("segments/update/", {"id": saved_id, "list_id": db_id, "name": "Static segment 2", "is_static": True,
                                 "is_refresh_daily": False, "format": "json"})
    assert shop.ok("segments/get/", {"id": saved_id})["data"]["name"] == "Static segment 2"

    # refusals name what is wrong: another database, a profile of none, a segment filled by a condition
    assert shop.refused("segments/update/", {"id": saved_id, "list_id": db_id + 1000, "name": "x"}).startswith("list_id:")
    shop.refused("profiles/segstatic/add", {"segment_id": saved_id, "db_id": db_id, "profile_id": "nobody"}, 404)
    by_condition = shop.ok("segments/add", {"name": "anna only", "db_id": db_id, "kind": "static", "condition": {
        "field": "email", "op": "eq", "value": "anna@example.com"}})["data"]["id"]
    shop.refused("profiles/segstatic/add", {"segment_id": by_condition, "db_id": db_id, "profile_id": vera}, 409)
    rules = [{"condition": "and", "list_id": db_id, "queries": []}]
    assert shop.refused("segments/add/", {"name": "rules", "list_id": db_id, "is_static": False,
                                          "segment": rules}).startswith("segment:")


def test_a_campaign_sends_to_the_members_of_a_static_segment(account):
    """What a campaign reads (Segments.profiles, the campaign worker's source) is the members."""
    shop, db_id = account.shop, account.db_id
    ids = _profiles(shop, db_id, "m1@example.com", "m2@example.com", "m3@example.com")
    segment_id = shop.ok("segments/add/", {"name": "members", "is_static": True, "list_id": db_id})["data"]["saved_id"]
    for profile_id in ids[:2]:
        shop.ok("profiles/segstatic/add", {"segment_id": segment_id, "db_id": db_id, "profile_id": profile_id})
    segments = Segments(account.platform.account_db(account.account_id), account.account_id)
    assert sorted(p["_id"] for batch in segments.profiles(segment_id) for p in batch) == sorted(ids[:2])


@covers("templates/add", "templates/get", "templates/update", "templates/list")
def test_templates_in_channels_form(account):
    shop = account.shop
    email = {"subject": "Welcome", "html": "<p>Hello</p>", "text": "Hello", "from_email": "news@shop.example",
             "from_name": "Shop", "replyto_email": "help@shop.example", "replyto_name": "Help",
             "is_not_inline": False}
    # https://guides.altcraft.com/en/developer-guide/templates/56255095/ : name, channels [{sid, fields}],
    # descr, json_url, ui_tags, groups, is_draft, is_confirm, suppress_id, format; data: {saved_id}
    saved_id = shop.ok("templates/add", {"name": "Welcome", "channels": [{"sid": "email", "fields": email}],
                                         "descr": "first letter", "json_url": "", "ui_tags": ["onboarding"],
                                         "groups": [1], "is_draft": False, "is_confirm": False, "suppress_id": 1,
                                         "format": "json"})["data"]["saved_id"]
    # https://guides.altcraft.com/en/v72/developer-guide/templates/2195608 : id, format; the template with channels
    got = shop.ok("templates/get", {"id": saved_id, "format": "json"})["data"]
    (channel,) = got["channels"]
    assert (got["id"], got["name"], channel["sid"]) == (saved_id, "Welcome", "email")
    assert channel["fields"] == email

    # https://guides.altcraft.com/en/developer-guide/templates/56255277 : id, name, channels, ...; envelope
    shop.ok("templates/update", {"id": saved_id, "name": "Welcome 2", "channels": [
        {"sid": "email", "fields": {**email, "subject": "Welcome again"}}], "is_draft": True, "format": "json"})
    got = shop.ok("templates/get", {"id": saved_id})["data"]
    assert (got["name"], got["channels"][0]["fields"]["subject"]) == ("Welcome 2", "Welcome again")

    # https://guides.altcraft.com/en/developer-guide/templates/2195606 : from_id, limit, channel, ui_tags,
    # groups, groups_id, format; data [{id, name, channels}], total_count
    listed = shop.ok("templates/list", {"from_id": saved_id, "limit": 1, "channel": "email", "ui_tags": [],
                                        "groups": [], "groups_id": [], "format": "json"})
    (item,) = listed["data"]
    assert (item["id"], item["name"], item["channels"][0]["sid"]) == (saved_id, "Welcome 2", "email")
    assert listed["total_count"] >= 1
    assert shop.ok("templates/list", {"channel": "sms"})["data"] == []
    assert shop.refused("templates/add", {"name": "sms", "channels": [{"sid": "sms", "fields": {}}]}) \
        .startswith("channels[0].sid:")
