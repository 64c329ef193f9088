"""Altcraft's system profile fields (`_fname`, `_bdate`, `phones`...) and its subscription and batch
methods, written as Altcraft's pages write them, against the real API (issue #16).

Profiles are stored under this platform's names (first_name, birthday, phone...); Altcraft's names
are translated on the way in and answered beside ours (altcraft/domain/fields.py ALTCRAFT_FIELDS),
so the same profile reads the same in segments, templates and imports under either name.
"""

from __future__ import annotations

import email

import pytest

from tests.lib.compat import covers
from tests.lib.compat_api import account_api

pytestmark = pytest.mark.integration

# https://guides.altcraft.com/en/developer-guide/objects/Profile-data-object_3116008 : the profile data
# object as the page shows it (a valid phone and our e-mail instead of the page's placeholders)
OLLY = {"_regcountry": "US", "_regcity": "New York", "_regip": "94.231.119.122", "_regurl": "www.example.com",
        "_regdate": "2019-03-14T22:00:00Z", "_bdate": "1990-02-22T21:00:00Z", "_browser": "Thunderbird",
        "_city": "Ryazan", "_country": "RU", "_fname": "Olly", "_ip": "94.231.119.122", "_lname": "Lambert",
        "_postal_code": 390000, "_region": "Ryazan Oblast", "_vendor": "form_#31", "_sex": 0, "_status": 0,
        "_tz": "Europe/Moscow", "email": "olly@example.com", "phones": ["+79161234567"],
        "card": "custom_value"}


@pytest.fixture(scope="module")
def account(harness, tmp_path_factory):
    with account_api(harness, tmp_path_factory.mktemp("compat-fields") / "akd",
                     fields=[{"name": "card", "type": "string"}]) as account:
        yield account


@covers("profiles/add", "profiles/get/", "profiles/update", "profiles/import")
def test_system_fields_in_and_out(account):
    shop, db_id = account.shop, account.db_id
    # https://guides.altcraft.com/en/developer-guide/profiles/2195477 : db_id, data (the profile data object)
    profile_id = shop.ok("profiles/add", {"db_id": db_id, "data": OLLY, "skip_triggers": True})["profile_id"]

    # https://guides.altcraft.com/en/developer-guide/profiles/2195482 : data is flat, system fields
    # under their names, phones an array
    got = shop.ok("profiles/get/", {"db_id": db_id, "matching": "email", "email": "olly@example.com"})["data"]
    assert (got["_fname"], got["_lname"], got["_city"], got["_country"], got["_region"], got["_tz"]) == \
        ("Olly", "Lambert", "Ryazan", "RU", "Ryazan Oblast", "Europe/Moscow")
    assert (got["_bdate"], got["_postal_code"], got["_ip"], got["phones"]) == \
        ("1990-02-22T00:00:00Z", "390000", "94.231.119.122", ["+79161234567"])
    assert got["_regdate"].endswith("Z") and got["card"] == "custom_value" and got["id"] == profile_id
    assert "_sex" not in got  # 0: not known
    # this platform's names for the same values, as every existing integration reads them
    assert (got["first_name"], got["birthday"], got["phone"]) == ("Olly", "1990-02-22", "+79161234567")

    # https://guides.altcraft.com/en/developer-guide/profiles/import/ ("update only"): matching phone
    # with the number only inside data.phones
    shop.ok("profiles/update", {"db_id": db_id, "matching": "phone",
                                "data": {"phones": ["+79161234567"], "_lname": "Lambert-Smith", "_sex": 2}})
    # https://guides.altcraft.com/en/developer-guide/profiles/import : matching custom by a system field
    shop.ok("profiles/import", {"db_id": db_id, "matching": "custom", "field_name": "_lname",
                                "field_value": "Lambert-Smith", "data": {"_fname": "Olivia"}})
    got = shop.ok("profiles/get/", {"db_id": db_id, "matching": "profile_id", "profile_id": profile_id})["data"]
    assert (got["_fname"], got["_lname"], got["_sex"], got["gender"]) == ("Olivia", "Lambert-Smith", 2, "f")

    # a field under both names with two values is refused naming Altcraft's
    error = shop.refused("profiles/update", {"db_id": db_id, "matching": "profile_id", "profile_id": profile_id,
                                             "data": {"_fname": "A", "first_name": "B"}})
    assert error.startswith("data._fname:"), error
    assert shop.refused("profiles/add", {"db_id": db_id, "data": {"email": "two@example.com", "phones": [
        "+79161234568", "+79161234569"]}}).startswith("data.phones:")
    assert shop.refused("profiles/add", {"db_id": db_id, "data": {"email": "sex@example.com", "_sex": 7}}) \
        .startswith("data._sex:")


def test_system_names_in_segments_templates_and_imports(account):
    """This platform's own methods read Altcraft's names too: one translation for every door."""
    shop, db_id = account.shop, account.db_id
    report = shop.ok("profiles/import_batch", {"db_id": db_id, "data": [
        {"email": "kazan1@example.com", "_fname": "Ivan", "_city": "Kazan"},
        {"email": "kazan2@example.com", "_fname": "Anna", "_city": "Kazan", "phones": []}]})["data"]
    assert (report["inserted"], report["failed"]) == (2, 0), report
    segment = shop.ok("segments/add", {"name": "kazan", "db_id": db_id,
                                       "condition": {"field": "_city", "op": "eq", "value": "Kazan"}})["data"]
    assert shop.ok("segments/count", {"id": segment["id"]})["data"]["count"] == 2
    template = shop.ok("templates/add", {"name": "hello", "subject": "Hi {{ _fname }}",
                                         "text": "Hello {{ _fname }} from {{ city }}"})["data"]
    profile = shop.ok("profiles/get/", {"db_id": db_id, "email": "kazan1@example.com"})["data"]
    message = shop.ok("templates/preview", {"id": template["id"], "db_id": db_id,
                                            "profile_id": profile["id"]})["data"]["message"]
    parsed = email.message_from_string(message)
    text = next(part for part in parsed.walk() if part.get_content_type() == "text/plain")
    assert parsed["Subject"] == "Hi Ivan" and text.get_payload(decode=True).decode().startswith("Hello Ivan from Kazan\r\n")


@covers("subscriptions/list", "subscriptions/get", "profiles/add_batch/")
def test_subscriptions_and_batch_add(account):
    shop, db_id = account.shop, account.db_id
    # https://guides.altcraft.com/en/developer-guide/profiles/2195496 : db_id, data [profile data
    # objects], skip_triggers, skip_invalid_subscriptions; result: one {error, error_text, profile_id} each
    answer = shop.ok("profiles/add_batch/", {"db_id": db_id, "skip_triggers": True,
                                             "skip_invalid_subscriptions": False, "data": [
        {"email": "vera@example.com", "_fname": "Vera",
         "subscriptions": [{"channel": "email", "resource_id": 1, "status": "subscribed"}]},
        {"email": "not an address"},
        {"email": "gleb@example.com", "phones": ["+79161234570"]}]})
    first, bad, third = answer["result"]
    assert first["error"] == 0 and first["profile_id"] and third["error"] == 0 and third["profile_id"]
    assert bad["error"] == 400 and bad["profile_id"] == "" and bad["error_text"].startswith("data[1].email:")

    # https://easy.altcraft.com/en/v72/developer-guide/profiles/subscriptions/2195522 : db_id,
    # profile_id, format; data [{resource_id, channel, email, priority, status, custom_fields}]
    (subscription,) = shop.ok("subscriptions/list", {"db_id": db_id, "profile_id": first["profile_id"],
                                                     "format": "json"})["data"]
    assert {k: subscription[k] for k in ("resource_id", "channel", "email", "status")} == \
        {"resource_id": 1, "channel": "email", "email": "vera@example.com", "status": "subscribed"}
    assert "priority" in subscription and subscription["custom_fields"] == {}
    # https://easy.altcraft.com/en/v72/developer-guide/profiles/subscriptions/2195527 : db_id, profile_id,
    # resource_id, channel with its key, format
    got = shop.ok("subscriptions/get", {"db_id": db_id, "profile_id": first["profile_id"], "resource_id": 1,
                                        "channel": "email", "email": "vera@example.com", "format": "json"})["data"]
    assert (got["resource_id"], got["channel"], got["status"]) == (1, "email", "subscribed")
    shop.refused("subscriptions/get", {"db_id": db_id, "profile_id": third["profile_id"], "resource_id": 1,
                                       "channel": "email"}, status=404)
