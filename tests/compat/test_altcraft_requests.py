"""Requests written from Altcraft's API v1.1 documentation, against the real API (issue #16).

One test per group of rows of docs/api-compatibility.md marked compatible (with or without
differences); `covers(...)` names the rows, and tests/unit/test_api_compat_doc.py fails the suite
when a compatible row has no test here. Each request uses the parameter names, types and answer
fields of the Altcraft page cited beside it (the table carries the same URLs) and nothing of this
platform's own; the assertions read only the fields that page documents, as a client written
from it does. The token is sent the two ways Altcraft's guide allows: `token` in the body and
`Authorization: Bearer`.

One api process under akd (gunicorn), as in production, on the shared real stores: the session's
(`compat_api` in conftest.py), with an account of this module's own.
"""

from __future__ import annotations

import pytest

from tests.lib.altcraft_api import Altcraft
from tests.lib.api import STRONG
from tests.lib.compat import covers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def altcraft(compat_api):
    """(admin client, account client with its Bearer token, the account's database id)."""
    admin = Altcraft(compat_api.port, compat_api.token)
    port = compat_api.port
    # set-up through this platform's own methods (Altcraft makes accounts and tokens in its panels)
    account = admin.ok("admin/accounts/save", {"name": f"compat-{port}", "tz": "Europe/Moscow"})["data"]
    user = admin.ok("admin/accounts/users/add", {"account_id": account["id"], "login": f"compat-{port}",
                                                 "password": STRONG})["data"]
    token = admin.ok("admin/tokens/add", {"account_id": account["id"], "user_id": user["id"]})["data"]["token"]
    shop = Altcraft(port, token, bearer=True)
    db = shop.ok("databases/add", {"name": "customers", "fields": [{"name": "card", "type": "string"}]})["data"]
    yield admin, shop, db["id"], account["id"]


@covers("profiles/add", "profiles/get/", "profiles/update", "profiles/delete")
def test_profile_life_cycle_as_the_guide_writes_it(altcraft):
    _, shop, db_id, _ = altcraft
    # https://guides.altcraft.com/en/developer-guide/profiles/2195477 : db_id, data, skip_triggers,
    # skip_invalid_subscriptions; the answer is profile_id beside error
    added = shop.ok("profiles/add", {"db_id": db_id, "data": {"email": "anna@example.com", "card": "A-1"},
                                     "skip_triggers": True, "skip_invalid_subscriptions": True, "format": "json"})
    profile_id = added["profile_id"]
    assert isinstance(profile_id, str) and profile_id

    # https://guides.altcraft.com/en/developer-guide/profiles/2195482 : matching email / profile_id /
    # custom (field_name + field_value); data is one flat object with id, db_id, email, subscriptions
    for lookup in ({"matching": "email", "email": "anna@example.com"},
                   {"matching": "profile_id", "profile_id": profile_id},
                   {"matching": "custom", "field_name": "card", "field_value": "A-1"}):
        got = shop.ok("profiles/get/", {"db_id": db_id, **lookup})["data"]
        assert (got["id"], got["db_id"], got["email"]) == (profile_id, db_id, "anna@example.com"), lookup
        assert isinstance(got["subscriptions"], list)

    # https://guides.altcraft.com/en/developer-guide/profiles/import/ ("update only"): matching,
    # data with subscriptions inside it
    shop.ok("profiles/update", {"db_id": db_id, "matching": "email", "email": "anna@example.com",
                                "data": {"card": "A-2", "subscriptions": [
                                    {"channel": "email", "email": "anna@example.com", "resource_id": 1}]},
                                "skip_triggers": True})
    got = shop.ok("profiles/get/", {"db_id": db_id, "matching": "email", "email": "anna@example.com"})["data"]
    assert got["card"] == "A-2"
    assert [(s["resource_id"], s["channel"]) for s in got["subscriptions"]] == [(1, "email")]
    # 409 when more than one profile matches, 404 when none (the quick-import page's codes)
    shop.ok("profiles/add", {"db_id": db_id, "data": {"email": "boris@example.com", "card": "A-2"}})
    status, answer = shop("profiles/get/", {"db_id": db_id, "matching": "custom", "field_name": "card",
                                            "field_value": "A-2"})
    assert (status, answer["error"]) == (409, 409), answer
    status, answer = shop("profiles/get/", {"db_id": db_id, "matching": "email", "email": "nobody@example.com"})
    assert (status, answer["error"]) == (404, 404), answer

    # https://guides.altcraft.com/en/developer-guide/profiles/28936545 : matching; data: {profile_id}
    deleted = shop.ok("profiles/delete", {"db_id": db_id, "matching": "profile_id", "profile_id": profile_id})
    assert deleted["data"]["profile_id"] == profile_id


@covers("profiles/import", "subscriptions/set")
def test_single_profile_import_and_subscription(altcraft):
    _, shop, db_id, _ = altcraft
    # https://guides.altcraft.com/en/developer-guide/profiles/import : one profile in data, matching
    # (default email), skip_triggers, skip_invalid_subscriptions, detect_geo; profile_id beside error
    body = {"db_id": db_id, "matching": "email", "email": "vera@example.com",
            "data": {"email": "vera@example.com", "card": "V-1"},
            "skip_triggers": False, "skip_invalid_subscriptions": True, "detect_geo": True}
    created = shop.ok("profiles/import", body)["profile_id"]
    again = shop.ok("profiles/import", {**body, "data": {"email": "vera@example.com", "card": "V-2"}})
    assert again["profile_id"] == created  # matched: updated, not added twice
    # the e-mail only inside data, matching by default
    third = shop.ok("profiles/import", {"db_id": db_id, "data": {"email": "vera@example.com", "card": "V-3"}})
    assert third["profile_id"] == created

    # https://guides.altcraft.com/en/developer-guide/profiles/subscriptions/2195519 : db_id, profile_id,
    # resource_id, channel with its key, status, priority, custom_fields, cats, skip_triggers
    shop.ok("subscriptions/set", {"db_id": db_id, "profile_id": created, "resource_id": 1, "channel": "email",
                                  "email": "vera@example.com", "status": "unsubscribed", "priority": 1,
                                  "custom_fields": {}, "cats": [], "skip_triggers": True, "format": "json"})
    got = shop.ok("profiles/get/", {"db_id": db_id, "matching": "profile_id", "profile_id": created})["data"]
    assert [(s["resource_id"], s["channel"], s["status"]) for s in got["subscriptions"]] == \
        [(1, "email", "unsubscribed")]


@covers("databases/list/", "segments/list/")
def test_paged_lists(altcraft):
    _, shop, db_id, _ = altcraft
    for name in ("second", "third"):
        shop.ok("databases/add", {"name": name})
    for name in ("s1", "s2"):
        shop.ok("segments/add", {"name": name, "db_id": db_id})
    # https://guides.altcraft.com/en/developer-guide/databases/2195563 and
    # https://guides.altcraft.com/en/developer-guide/segments/2195600 : from_id (the first id
    # returned), limit, ui_tags, groups, groups_id, format; data [{id, name}], next_from_id, total_count
    for method in ("databases/list/", "segments/list/"):
        seen, from_id = [], 1
        while True:
            answer = shop.ok(method, {"from_id": from_id, "limit": 2, "ui_tags": [], "groups": [],
                                      "groups_id": [], "format": "json"})
            assert answer["total_count"] >= 2 and len(answer["data"]) <= 2
            if not answer["data"]:
                break
            assert all({"id", "name"} <= set(item) for item in answer["data"])
            seen += [item["id"] for item in answer["data"]]
            from_id = answer["next_from_id"]
        assert seen == sorted(seen) and len(seen) == len(set(seen)) == answer["total_count"], method


@covers("admin/accounts/list/", "admin/accounts/activate", "admin/accounts/deactivate",
        "admin/accounts/unfreeze", "admin/senders/undelete/")
def test_admin_methods(altcraft):
    admin, _, _, account_id = altcraft
    # https://guides.altcraft.com/en/admin-guide/admin-api/accounts/67728 : from_id, limit;
    # data [{id, name, timezone, tariff_id, is_active, ...}], total_count
    listed = admin.ok("admin/accounts/list/", {"from_id": account_id, "limit": 1, "format": "json"})
    (item,) = listed["data"]
    assert (item["id"], item["timezone"], item["is_active"]) == (account_id, "Europe/Moscow", True)
    assert "tariff_id" in item and listed["total_count"] >= 1

    # https://guides.altcraft.com/en/admin-guide/admin-api/accounts/access-management/activate-account
    # and .../freezing-account (v73): id; {error, error_text}
    for method, active in (("admin/accounts/deactivate", False), ("admin/accounts/activate", True)):
        assert admin.ok(method, {"id": account_id})["error_text"]
        again = admin.ok("admin/accounts/list/", {"from_id": account_id, "limit": 1})["data"][0]
        assert again["is_active"] is active
    admin.ok("admin/accounts/freeze", {"id": account_id})
    admin.ok("admin/accounts/unfreeze", {"id": account_id})

    # https://guides.altcraft.com/en/v72/admin-guide/admin-api/senders/67777 : id, format;
    # {error, error_text}
    sender = admin.ok("admin/senders/save", {"name": "compat", "from_email": "news@compat.example",
                                             "dkim_algorithm": "none"})["data"]
    admin.ok("admin/senders/delete", {"id": sender["id"]})
    admin.ok("admin/senders/undelete/", {"id": sender["id"], "format": "json"})
    assert sender["id"] in [s["id"] for s in admin.ok("admin/senders/list/", {})["data"]]


def test_error_numbers_are_altcraft_s(altcraft):
    """https://guides.altcraft.com/en/developer-guide/api-interaction : error is 400, 401, 403, 404..."""
    admin, shop, db_id, _ = altcraft
    assert shop("profiles/get/", {"db_id": "x"})[1]["error"] == 400
    assert Altcraft(shop.port, "not-a-token")("databases/list/", {})[1]["error"] == 401
    assert shop("admin/accounts/list/", {})[1]["error"] == 403
    assert shop("profiles/get/", {"db_id": db_id, "matching": "profile_id", "profile_id": "none"})[1]["error"] == 404


@covers("admin/accounts/freeze", "admin/accounts/users/list", "admin/accounts/users/delete")
def test_admin_account_users_and_freezing(altcraft):
    admin, _, _, account_id = altcraft
    # https://guides.altcraft.com/en/v73/admin-guide/admin-api/accounts/access-management/freezing-account :
    # id, frozen_details {payment_url}; {error, error_text}
    assert admin.ok("admin/accounts/freeze", {"id": account_id,
                                              "frozen_details": {"payment_url": "https://pay.example/1"}})
    admin.ok("admin/accounts/unfreeze", {"id": account_id})

    admin.ok("admin/accounts/users/add", {"account_id": account_id, "login": "olga", "password": STRONG,
                                          "name": "Olga Petrova"})
    # https://guides.altcraft.com/en/v72/admin-guide/admin-api/users/get-users-list : account_id, active,
    # master, lang, format; data [{username, first_name, last_name, email, ...}]
    users = admin.ok("admin/accounts/users/list", {"account_id": account_id, "active": True, "format": "json"})
    olga = next(u for u in users["data"] if u["username"] == "olga")
    assert (olga["first_name"], olga["last_name"]) == ("Olga", "Petrova") and "email" in olga

    # https://guides.altcraft.com/en/v73/admin-guide/admin-api/users/delete-user : account_id, name
    # (the login), format; {error, error_text}
    admin.ok("admin/accounts/users/delete", {"account_id": account_id, "name": "olga", "format": "json"})
    left = admin.ok("admin/accounts/users/list", {"account_id": account_id})["data"]
    assert "olga" not in [u["username"] for u in left]
    status, answer = admin("admin/accounts/users/delete", {"account_id": account_id, "name": "olga"})
    assert (status, answer["error"]) == (404, 404), answer


@covers("templates/delete", "admin/vsenders/clone", "admin/vsenders/list", "admin/senders/list/")
def test_delete_a_template_and_clone_a_virtual_sender(altcraft):
    admin, shop, _, account_id = altcraft
    template = shop.ok("templates/add", {"name": "gone", "subject": "Hi", "text": "Hi"})["data"]  # ours
    # https://guides.altcraft.com/en/developer-guide/templates/56255090 : id, format; data is the id
    assert shop.ok("templates/delete", {"id": template["id"], "format": "json"})["data"] == template["id"]

    sender = admin.ok("admin/senders/save", {"name": "clone-src", "from_email": "news@clone.example",
                                             "dkim_algorithm": "none"})["data"]
    admin.ok("admin/senders/assign", {"id": sender["id"], "account_id": account_id})
    vsender = admin.ok("admin/vsenders/add", {"account_id": account_id, "name": "routing", "rules": [
        {"match": "default", "senders": [{"id": sender["id"]}]}]})["data"]  # this platform's rule shape
    # https://guides.altcraft.com/en/v72/admin-guide/admin-api/virtual-senders/67745 : account_id, id,
    # name, format; data: {saved_id}
    saved_id = admin.ok("admin/vsenders/clone", {"account_id": account_id, "id": vsender["id"],
                                                 "name": "routing 2", "format": "json"})["data"]["saved_id"]
    assert saved_id != vsender["id"]
    assert admin.ok("admin/vsenders/get", {"account_id": account_id, "id": saved_id})["data"]["name"] == "routing 2"

    # https://guides.altcraft.com/en/v72/admin-guide/admin-api/virtual-senders/67735 : account_id,
    # from_id, limit, format; data [{id, name, sms_channel, email_channel, custom_channels}], total_count
    listed = admin.ok("admin/vsenders/list", {"account_id": account_id, "from_id": 1, "limit": 1000, "format": "json"})
    assert [v["name"] for v in listed["data"]] == ["routing", "routing 2"] and listed["total_count"] == 2
    assert all(v["email_channel"] is True and v["sms_channel"] is False and v["custom_channels"] == []
               for v in listed["data"])
    # https://guides.altcraft.com/en/admin-guide/admin-api/senders/67765 : from_id, limit, format;
    # data [{id, name, type, channel_type}], total_count
    senders = admin.ok("admin/senders/list/", {"from_id": sender["id"], "limit": 1, "format": "json"})
    assert [(s["id"], s["name"], s["type"], s["channel_type"]) for s in senders["data"]] == \
        [(sender["id"], "clone-src", "akmta", "email")]
