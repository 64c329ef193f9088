"""Virtual senders through the admin API, and campaigns that name one, against the real stores."""

from __future__ import annotations

import pytest

from tests.lib.api import make_account

pytestmark = pytest.mark.integration


def _sender(admin, name: str, from_email: str, *accounts: int) -> dict:
    sender = admin.ok("admin/senders/save", name=name, from_email=from_email, dkim_algorithm="none")
    for account_id in accounts:
        admin.ok("admin/senders/assign", id=sender["id"], account_id=account_id)
    return sender


def _rules(to_domain_sender: int, *default_senders: tuple[int, int]) -> list[dict]:
    return [{"match": "to_domain", "values": ["mail.example"], "senders": [{"id": to_domain_sender, "weight": 1}],
             "from_email": "Hello@Brand.example", "from_name": "Brand", "reply_to": "care@brand.example"},
            {"match": "default", "senders": [{"id": s, "weight": w} for s, w in default_senders]}]


def _campaign_refs(client) -> dict:
    db = client.ok("databases/add", name="main")
    segment = client.ok("segments/add", name="all", db_id=db["id"])
    template = client.ok("templates/add", name="t", subject="s", text="hello")
    return dict(db_id=db["id"], segment_id=segment["id"], template_id=template["id"])


def test_crud_clone_and_delete(admin):
    account, client = make_account(admin, "vs-crud")
    a = account["id"]
    s1, s2, s3 = (_sender(admin, f"s{i}", f"news{i}@shop{i}.example", a)["id"] for i in (1, 2, 3))

    created = admin.ok("admin/vsenders/add", account_id=a, name="routing", rules=_rules(s1, (s2, 1), (s3, 3)))
    assert created["account_id"] == a and created["name"] == "routing"
    assert created["rules"][0]["from_email"] == "hello@brand.example"  # normalised
    assert created["rules"][1] == {"match": "default", "values": [], "senders": [{"id": s2, "weight": 1},
                                   {"id": s3, "weight": 3}], "from_email": "", "from_name": "", "reply_to": ""}
    vid = created["id"]
    assert admin.ok("admin/vsenders/get", account_id=a, id=vid) == created
    status, body = admin("admin/vsenders/add", account_id=a, name="routing", rules=_rules(s1, (s2, 1)))
    assert status == 409 and body["error_text"].startswith("name:"), body

    updated = admin.ok("admin/vsenders/update", account_id=a, id=vid, rules=_rules(s1, (s2, 2)))
    assert updated["rules"][1]["senders"] == [{"id": s2, "weight": 2}] and updated["name"] == "routing"
    assert admin.ok("admin/vsenders/update", account_id=a, id=vid, name="renamed")["rules"] == updated["rules"]

    # the default rule cannot be removed, and a bad rule changes nothing stored
    for rules, field in (([updated["rules"][0]], "rules[0].match"),
                         ([{"match": "default", "senders": [{"id": s2, "weight": 0}]}], "rules[0].senders[0].weight"),
                         ([{"match": "to_domain", "values": ["mail.example"], "senders": []},
                           updated["rules"][1]], "rules[0].senders"),
                         ([{"match": "by_group", "values": ["vip"], "senders": [{"id": s1}]}, updated["rules"][1]],
                          "rules[0].match")):
        status, body = admin("admin/vsenders/update", account_id=a, id=vid, rules=rules)
        assert status == 400 and body["error_text"].startswith(field + ":"), body
    assert admin.ok("admin/vsenders/get", account_id=a, id=vid)["rules"] == updated["rules"]

    copy = admin.ok("admin/vsenders/clone", account_id=a, id=vid)
    assert copy["id"] != vid and copy["name"] == "renamed (copy)" and copy["rules"] == updated["rules"]
    named = admin.ok("admin/vsenders/clone", account_id=a, id=vid, name="second")
    assert named["name"] == "second" and named["rules"] == updated["rules"]
    status, _ = admin("admin/vsenders/clone", account_id=a, id=vid, name="second")
    assert status == 409
    assert [v["name"] for v in admin.ok("admin/vsenders/list", account_id=a)] == ["renamed", "renamed (copy)", "second"]

    # a campaign that is not done holds on to its virtual sender
    campaign = client.ok("campaigns/add", name="promo", vsender_id=vid, **_campaign_refs(client))
    assert campaign["vsender_id"] == vid and campaign["sender_id"] is None
    status, body = admin("admin/vsenders/delete", account_id=a, id=vid)
    assert status == 409 and f"campaign {campaign['id']} (promo) is draft" in body["error_text"], body
    client.ok("campaigns/start", id=campaign["id"])
    client.ok("campaigns/pause", id=campaign["id"])
    status, body = admin("admin/vsenders/update", account_id=a, id=vid, rules=_rules(s1, (s3, 1)))
    assert status == 409 and "is paused" in body["error_text"], body  # a launch in progress keeps its routing
    client.ok("campaigns/cancel", id=campaign["id"])
    admin.ok("admin/vsenders/delete", account_id=a, id=vid)
    status, _ = admin("admin/vsenders/get", account_id=a, id=vid)
    assert status == 404
    assert [v["id"] for v in admin.ok("admin/vsenders/list", account_id=a)] == [copy["id"], named["id"]]


def test_campaign_names_exactly_one_sender(admin):
    account, client = make_account(admin, "vs-choice")
    a = account["id"]
    s1 = _sender(admin, "s1", "news@shop.example", a)["id"]
    vid = admin.ok("admin/vsenders/add", account_id=a, name="v", rules=_rules(s1, (s1, 1)))["id"]
    refs = _campaign_refs(client)
    for params in ({}, {"sender_id": s1, "vsender_id": vid}):
        status, body = client("campaigns/add", name="c", **refs, **params)
        assert status == 400 and body["error_text"].startswith("sender_id: give exactly one"), body
    campaign = client.ok("campaigns/add", name="c", **refs, sender_id=s1)
    switched = client.ok("campaigns/update", id=campaign["id"], vsender_id=vid)
    assert (switched["sender_id"], switched["vsender_id"]) == (None, vid)
    back = client.ok("campaigns/update", id=campaign["id"], sender_id=s1)
    assert (back["sender_id"], back["vsender_id"]) == (s1, None)
    status, body = client("campaigns/update", id=campaign["id"], sender_id=s1, vsender_id=vid)
    assert status == 400 and body["error_text"].startswith("sender_id:")
    assert client.ok("campaigns/get", id=campaign["id"])["sender_id"] == s1


def test_tenants_never_see_or_use_each_others_virtual_senders(admin):
    alpha, alpha_client = make_account(admin, "vs-alpha")
    beta, beta_client = make_account(admin, "vs-beta")
    mine = _sender(admin, "alpha only", "news@alpha.example", alpha["id"])["id"]
    theirs = _sender(admin, "beta only", "news@beta.example", beta["id"])["id"]
    unassigned = _sender(admin, "nobody's", "news@nobody.example")["id"]
    vid = admin.ok("admin/vsenders/add", account_id=alpha["id"], name="alpha routing",
                   rules=_rules(mine, (mine, 1)))["id"]

    # beta's account cannot read, change, clone or delete alpha's virtual sender
    for path, extra in (("get", {}), ("update", {"name": "mine now"}), ("clone", {}), ("delete", {})):
        status, body = admin(f"admin/vsenders/{path}", account_id=beta["id"], id=vid, **extra)
        assert status == 404 and body["error_text"] == f"virtual sender {vid} not found", (path, body)
    assert admin.ok("admin/vsenders/list", account_id=beta["id"]) == []
    assert admin.ok("admin/vsenders/get", account_id=alpha["id"], id=vid)["name"] == "alpha routing"

    # a rule may name only senders assigned to its account: others are "not found", alike
    for other in (theirs, unassigned, 999_999):
        status, body = admin("admin/vsenders/add", account_id=alpha["id"], name="sneaky",
                             rules=_rules(mine, (mine, 1), (other, 1)))
        assert status == 404 and body["error_text"] == f"rules[1].senders[1].id: sender {other} not found", body
    assert [v["id"] for v in admin.ok("admin/vsenders/list", account_id=alpha["id"])] == [vid]

    # and beta's campaigns cannot use alpha's virtual sender
    status, body = beta_client("campaigns/add", name="c", vsender_id=vid, **_campaign_refs(beta_client))
    assert status == 404 and body["error_text"] == f"virtual sender {vid} not found", body
    assert beta_client.ok("campaigns/list") == []
    status, _ = admin("admin/vsenders/list", account_id=999_999)
    assert status == 404
    # an account token is not an admin token
    status, _ = alpha_client("admin/vsenders/list", account_id=alpha["id"])
    assert status in (401, 403)
