"""Altcraft's account-side senders and virtual senders written from its guide (#16).

The account's token (as Bearer) and nothing else names the account; the rules go in and come
back in Altcraft's `email_rules` shape. Senders are made and assigned on the admin side first
(this platform's admin/senders/*, as Altcraft's administrators do in the admin panel).
"""

from __future__ import annotations

import pytest

from tests.lib.compat import covers

pytestmark = pytest.mark.integration


def _rule(kind: str, value: str, sender_id: int, percent: int = 100, **overrides: str) -> dict:
    """An email rule object as https://guides.altcraft.com/en/developer-guide/objects/Email-rule-object_2195791 writes it."""
    sender = {"from_email": "", "from_name": "", "percent": percent, "replyto_email": "", "sender_id": sender_id}
    return {"senders": [{**sender, **overrides}], "type": kind, "value": value}


@covers("senders/list", "vsenders/list", "vsenders/get", "vsenders/add", "vsenders/clone", "vsenders/delete")
def test_senders_and_virtual_senders_of_the_account(ops):
    admin, shop = ops.admin, ops.shop
    second = admin.ok("admin/senders/save", {"name": "bulk", "from_email": "bulk@ops.example",
                                             "dkim_algorithm": "none"})["data"]["id"]
    admin.ok("admin/senders/assign", {"id": second, "account_id": ops.account_id})
    admin.ok("admin/senders/save", {"name": "someone else's", "from_email": "x@other.example",
                                    "dkim_algorithm": "none"})  # not assigned: never listed

    # https://guides.altcraft.com/en/developer-guide/senders/2195754 : from_id, limit, format;
    # data [{channel, id, name, type}], next_from_id, total_count
    first = shop.ok("senders/list", {"limit": 1, "format": "json"})
    assert [(s["id"], s["channel"], s["type"]) for s in first["data"]] == [(ops.sender_id, "email", "akmta")]
    assert first["total_count"] == 2
    rest = shop.ok("senders/list", {"from_id": first["next_from_id"], "limit": 10})
    assert [s["id"] for s in rest["data"]] == [second]
    assert all("accounts" not in s and "dkim_dns_record" not in s for s in first["data"] + rest["data"])

    # https://guides.altcraft.com/en/developer-guide/senders/virtual-senders/2195769 : name, email_rules,
    # sms_rules, format (the page's example, with a to_domain rule before the default one)
    default = _rule("default", "", ops.sender_id, 60)
    default["senders"].append({**default["senders"][0], "sender_id": second, "percent": 40})
    email_rules = [_rule("to_domain", "gmail.com", second, from_email="hi@ops.example", from_name="Ops"), default]
    vsender_id = shop.ok("vsenders/add", {"name": "New virtual sender", "email_rules": email_rules,
                                          "sms_rules": [], "format": "json"})["data"]["saved_id"]
    # what cannot be said here is refused by name: group rules, SMS rules, a sender not assigned
    assert shop.refused("vsenders/add", {"name": "groups", "sms_rules": [], "email_rules": [
        _rule("group_id", "12", second), _rule("default", "", second)]}).startswith("email_rules[0].type")
    assert shop.refused("vsenders/add", {"name": "sms", "email_rules": email_rules, "sms_rules": [
        _rule("default", "", second)]}).startswith("sms_rules")
    assert shop.refused("vsenders/add", {"name": "stranger", "sms_rules": [], "email_rules": [
        _rule("default", "", 10 ** 9)]}, 404).startswith("email_rules[0].senders[0].sender_id")

    # https://guides.altcraft.com/en/v72/developer-guide/senders/virtual-senders/2195765 : id, format;
    # data {id, name, email_rules [{type, value, senders [{sender_id, percent, from_email, from_name,
    # replyto_email}]}]}
    got = shop.ok("vsenders/get", {"id": vsender_id, "format": "json"})["data"]
    assert (got["id"], got["name"]) == (vsender_id, "New virtual sender")
    assert got["email_rules"] == email_rules

    # https://guides.altcraft.com/en/v72/developer-guide/senders/virtual-senders/2195767 : id, name
    # (default "Clone of ..."), format; data {saved_id}
    copy_id = shop.ok("vsenders/clone", {"id": vsender_id, "format": "json"})["data"]["saved_id"]
    assert shop.ok("vsenders/get", {"id": copy_id})["data"]["name"] == "Clone of New virtual sender"

    # https://guides.altcraft.com/en/developer-guide/senders/virtual-senders/2195762 : from_id, limit,
    # format; data [{id, name, email_channel, sms_channel}], total_count
    listed = shop.ok("vsenders/list", {"from_id": 1, "limit": 2, "format": "json"})
    assert [(v["id"], v["name"], v["email_channel"], v["sms_channel"]) for v in listed["data"]] == \
        [(vsender_id, "New virtual sender", True, False), (copy_id, "Clone of New virtual sender", True, False)]
    assert listed["total_count"] == 2

    # https://guides.altcraft.com/en/developer-guide/senders/virtual-senders/2195773 : id, format;
    # {error, error_text}
    assert shop.ok("vsenders/delete", {"id": copy_id, "format": "json"})["data"] is None
    assert shop.refused("vsenders/get", {"id": copy_id}, 404)
    # the admin side sees the same virtual senders (one store)
    assert [v["id"] for v in ops.admin.ok("admin/vsenders/list", {"account_id": ops.account_id})["data"]] == \
        [vsender_id]
