"""The v1.1 API against the real document store (Flask's client, real FerretDB/MongoDB)."""

from __future__ import annotations

import pytest

from altcraft.http.apiv11 import SHARED_KEYS
from altcraft.services.apiv11 import api as registry_api
from tests.lib.api import Client, make_account
from tests.lib.workflows import welcome

pytestmark = pytest.mark.integration


def test_account_user_token_and_profile_lifecycle(admin):
    account, shop = make_account(admin, "shop")
    assert account["title"] == "shop" and account["active"] and not account["frozen"]
    users, = [admin.ok("admin/accounts/users/list", account_id=account["id"])]
    assert [u["login"] for u in users] == ["shop-owner"] and "password_hash" not in users[0]

    db = shop.ok("databases/add", name="customers", fields=[{"name": "score", "type": "integer"}])
    added = shop.ok("profiles/add", db_id=db["id"],
                    data={"email": " Anna@Example.com", "first_name": "Anna", "phone": "8 916 123 45 67", "score": "5"})
    assert added["data"] == {"email": "anna@example.com", "first_name": "Anna", "gender": "f",
                             "phone": "+79161234567", "score": 5}
    assert shop.ok("profiles/get", db_id=db["id"], email="ANNA@example.com")["id"] == added["id"]
    updated = shop.ok("profiles/update", db_id=db["id"], profile_id=added["id"], data={"city": "Kazan"},
                      subscriptions=[{"resource_id": 1, "channel": "email", "status": "subscribed"}])
    assert updated["data"]["city"] == "Kazan" and updated["data"]["score"] == 5
    assert updated["subscriptions"][0]["status"] == "subscribed"
    shop.ok("profiles/delete", db_id=db["id"], profile_id=added["id"])
    status, body = shop("profiles/get", db_id=db["id"], profile_id=added["id"])
    assert (status, body["error"], body["data"]) == (404, 404, None)


def test_weak_password_is_refused_with_a_reason(admin):
    account = admin.ok("admin/accounts/save", name="weak")
    status, body = admin("admin/accounts/users/add", account_id=account["id"], login="bob", password="password123")
    assert status == 400 and body["error"] == 400
    assert body["error_text"] == "password: too common: it is in the list of weak and leaked passwords"
    assert admin.ok("admin/accounts/users/list", account_id=account["id"]) == []


def _account_calls(a: dict) -> dict[str, dict]:
    """Every account-scope endpoint with parameters that point at another account's data."""
    db_id, profile_id = a["db"], a["profile"]
    return {
        "databases/update": {"id": db_id, "name": "renamed"},
        "databases/delete": {"id": db_id},
        "profiles/add": {"db_id": db_id, "data": {"email": "intruder@example.com"}},
        "profiles/get": {"db_id": db_id, "profile_id": profile_id},
        "profiles/update": {"db_id": db_id, "profile_id": profile_id, "data": {"city": "Nowhere"}},
        "profiles/delete": {"db_id": db_id, "profile_id": profile_id},
        "profiles/import": {"db_id": db_id, "matching": "email", "email": "victim@example.com",
                            "data": {"email": "victim@example.com", "city": "Nowhere"}},
        "profiles/import_batch": {"db_id": db_id, "data": [{"email": "victim@example.com", "city": "Nowhere"}]},
        "subscriptions/set": {"db_id": db_id, "profile_id": profile_id, "resource_id": 1, "channel": "email"},
        "subscriptions/list": {"db_id": db_id, "profile_id": profile_id},
        "subscriptions/get": {"db_id": db_id, "profile_id": profile_id, "resource_id": 1, "channel": "email"},
        "profiles/add_batch": {"db_id": db_id, "data": [{"email": "intruder@example.com"}]},
        "profiles/segstatic/add": {"segment_id": a["segment"], "db_id": db_id, "profile_id": profile_id},
        "profiles/segstatic/remove": {"segment_id": a["segment"], "db_id": db_id, "profile_id": profile_id},
        "segments/add": {"name": "steal", "db_id": db_id},
        "segments/get": {"id": a["segment"]},
        "segments/update": {"id": a["segment"], "name": "mine"},
        "segments/delete": {"id": a["segment"]},
        "segments/count": {"id": a["segment"]},
        "templates/get": {"id": a["template"]},
        "templates/update": {"id": a["template"], "subject": "mine"},
        "templates/delete": {"id": a["template"]},
        "templates/preview": {"id": a["template"], "db_id": db_id, "profile_id": profile_id},
        "campaigns/add": {"name": "steal", "db_id": db_id, "segment_id": a["segment"],
                          "template_id": a["template"], "sender_id": a["sender"]},
        "campaigns/get": {"id": a["campaign"]},
        "campaigns/update": {"id": a["campaign"], "name": "mine"},
        "campaigns/delete": {"id": a["campaign"]},
        "campaigns/start": {"id": a["campaign"]},
        "campaigns/pause": {"id": a["campaign"]},
        "campaigns/resume": {"id": a["campaign"]},
        "campaigns/cancel": {"id": a["campaign"]},
        "campaigns/report": {"id": a["campaign"]},
        "campaigns/activate/": {"id": a["campaign"], "run_now": True},
        "campaigns/deactivate": {"id": a["campaign"], "abort_if_running": True},
        "campaigns/clone": {"id": a["campaign"]},
        "campaigns/get_status": {"id": a["campaign"]},
        "campaigns/log_v2": {"id": a["campaign"]},
        "vsenders/add": {"name": "steal", "sms_rules": [], "email_rules": [
            {"type": "default", "value": "", "senders": [{"sender_id": a["sender"], "percent": 100}]}]},
        "vsenders/get": {"id": a["vsender"]},
        "vsenders/update": {"id": a["vsender"], "name": "mine"},
        "vsenders/clone": {"id": a["vsender"]},
        "vsenders/delete": {"id": a["vsender"]},
        "campaigns/triggers/add": {"name": "steal", "db_id": db_id, "template_id": a["template"],
                                   "sender_id": a["sender"]},
        "campaigns/triggers/get": {"id": a["trigger"]},
        "campaigns/triggers/update": {"id": a["trigger"], "name": "mine"},
        "campaigns/triggers/clone": {"id": a["trigger"]},
        "campaigns/triggers/start_batch": {"trigger_id": a["trigger"], "data": [{"profile_id": profile_id}]},
        "campaigns/triggers/start": {"id": a["trigger"], "profile_id": profile_id},
        "campaigns/triggers/import_and_start": {"trigger_id": a["trigger"], "data": {"email": "victim@example.com"}},
        "events/post": {"db_id": db_id, "profile_id": profile_id, "name": "steal"},
        "webhooks/get": {"id": a["webhook"]},
        "webhooks/update": {"id": a["webhook"], "description": "mine"},
        "webhooks/rotate_secret": {"id": a["webhook"]},
        "webhooks/log": {"webhook_id": a["webhook"]},
        "webhooks/replay": {"webhook_id": a["webhook"]},
        "webhooks/delete": {"id": a["webhook"]},
        "workflows/add": {"name": "steal", "db_id": db_id,
                          "nodes": welcome(template_id=a["template"], sender_id=a["sender"])},
        "workflows/get": {"id": a["workflow"]},
        "workflows/update": {"id": a["workflow"], "name": "mine"},
        "workflows/activate": {"id": a["workflow"]},
        "workflows/deactivate": {"id": a["workflow"]},
        "workflows/start": {"id": a["workflow"], "profile_id": profile_id},
        "workflows/import_and_start_batch": {"id": a["workflow"], "data": [{"data": {"email": "victim@example.com"}}]},
        # these act on the caller's own data; they run last
        "databases/list": {},
        "segments/list": {},
        "templates/list": {},
        "campaigns/list": {},
        "campaigns/regulars/list/": {},
        "campaigns/triggers/list": {},
        "senders/list": {},
        "vsenders/list": {},
        "reports/hourly": {},
        "databases/add": {"name": "intruder"},
        "templates/add": {"name": "own", "subject": "own", "text": "own"},
        "webhooks/list": {},
        "webhooks/add": {"url": "http://192.0.32.10/own"},  # a public address literal: no DNS
        "workflows/list": {},
    }


OWN_DATA = {"databases/list", "segments/list", "templates/list", "campaigns/list", "campaigns/triggers/list",
            "campaigns/regulars/list/", "senders/list", "vsenders/list", "reports/hourly",
            "databases/add", "templates/add", "webhooks/list", "webhooks/add", "workflows/list"}


def test_tenant_isolation_on_every_account_endpoint(admin, platform):
    alpha_account, alpha = make_account(admin, "alpha")
    _, beta = make_account(admin, "beta")
    db = alpha.ok("databases/add", name="main")
    victim = alpha.ok("profiles/add", db_id=db["id"], data={"email": "victim@example.com", "city": "Kazan"})
    sender = admin.ok("admin/senders/save", name="alpha news", from_email="news@alpha.example", dkim_algorithm="none")
    admin.ok("admin/senders/assign", id=sender["id"], account_id=alpha_account["id"])
    segment = alpha.ok("segments/add", name="kazan", db_id=db["id"],
                       condition={"field": "city", "op": "eq", "value": "Kazan"})
    template = alpha.ok("templates/add", name="t", subject="Hi {{ first_name }}", html="<p>Hi</p>")
    campaign = alpha.ok("campaigns/add", name="c", db_id=db["id"], segment_id=segment["id"],
                        template_id=template["id"], sender_id=sender["id"])
    trigger = alpha.ok("campaigns/triggers/add", name="t", db_id=db["id"], template_id=template["id"],
                       sender_id=sender["id"])
    webhook = alpha.ok("webhooks/add", url="http://192.0.32.10/alpha", description="alpha's")
    workflow = alpha.ok("workflows/add", name="welcome", db_id=db["id"],
                        nodes=welcome(template_id=template["id"], sender_id=sender["id"]))
    alpha.ok("workflows/activate", id=workflow["id"])
    vsender = alpha.ok("vsenders/add", name="route", sms_rules=[], email_rules=[
        {"type": "default", "value": "", "senders": [{"sender_id": sender["id"], "percent": 100}]}])
    ids = {"vsender": vsender["saved_id"], "workflow": workflow["id"], "db": db["id"], "profile": victim["id"], "segment": segment["id"], "template": template["id"],
           "sender": sender["id"], "campaign": campaign["id"], "trigger": trigger["id"], "webhook": webhook["id"]}
    calls = _account_calls(ids)
    account_endpoints = {p for p, e in registry_api.endpoints.items() if e.scope == "account"}
    assert set(calls) == account_endpoints, "a new account endpoint needs an isolation case here"

    # beta has nothing of its own yet: every call that names alpha's objects fails
    for path, params in calls.items():
        if path in OWN_DATA:
            continue
        status, body = beta(path, **params)
        assert status == 404 and body["error"] == 404 and body["data"] is None, (path, body)
    for path in OWN_DATA:  # and what beta lists or creates is beta's own
        beta.ok(path, **calls[path])
    assert [d["name"] for d in beta.ok("databases/list")] == ["intruder"]
    assert beta.ok("campaigns/list") == [] and beta.ok("segments/list") == []
    assert beta.ok("campaigns/triggers/list") == []
    assert beta.ok("senders/list") == [] and beta.ok("vsenders/list") == []

    # beta now has a database with the same id as alpha's: still never alpha's profile
    for path in ("profiles/get", "profiles/update", "profiles/delete", "subscriptions/set", "subscriptions/list",
                 "subscriptions/get", "profiles/segstatic/add", "profiles/segstatic/remove"):
        status, body = beta(path, **calls[path])
        assert status == 404 and body["data"] is None, (path, body)
    report = beta.ok("profiles/import_batch", **calls["profiles/import_batch"])
    assert report["inserted"] == 1  # into beta's own database
    imported = beta.ok("profiles/import", **calls["profiles/import"])
    assert imported["id"] != victim["id"] and imported["data"]["city"] == "Nowhere"  # beta's own copy, updated

    # alpha's data is untouched
    assert alpha.ok("profiles/get", db_id=db["id"], profile_id=victim["id"])["data"] == victim["data"]
    assert [d["name"] for d in alpha.ok("databases/list")] == ["main"]
    assert alpha.ok("segments/get", id=segment["id"])["name"] == "kazan"
    assert alpha.ok("templates/get", id=template["id"])["subject"] == "Hi {{ first_name }}"
    assert alpha.ok("campaigns/get", id=campaign["id"])["state"] == "draft"
    assert alpha.ok("campaigns/get", id=campaign["id"])["name"] == "c"
    assert alpha.ok("campaigns/log_v2", id=campaign["id"]) == [], "beta acted on alpha's campaign"
    assert [v["name"] for v in alpha.ok("vsenders/list")] == ["route"]
    assert alpha.ok("webhooks/get", id=webhook["id"])["description"] == "alpha's"
    assert [w["url"] for w in beta.ok("webhooks/list")] == ["http://192.0.32.10/own"]
    assert beta.ok("workflows/list") == []
    assert alpha.ok("workflows/get", id=workflow["id"])["name"] == "welcome"
    assert alpha.ok("workflows/get", id=workflow["id"])["counts"] == {}, "beta entered alpha's scenario"


def test_scopes_are_enforced(admin):
    _, shop = make_account(admin, "scoped")
    for path, endpoint in registry_api.endpoints.items():
        wrong = shop if endpoint.scope == "admin" else admin
        status, body = wrong(path)
        assert status == 403 and body["error"] == 403 and body["data"] is None, path
        status, body = wrong(path, token="not-a-token")
        assert status == 401 and body["error"] == 401, path
        status, body = wrong.http.post(f"/api/v1.1/{path}", json={}).status_code, None
        assert status == 401, path


def test_frozen_account_reads_but_cannot_write_and_deactivated_does_nothing(admin):
    account, shop = make_account(admin, "frosty")
    db = shop.ok("databases/add", name="main")
    admin.ok("admin/accounts/freeze", id=account["id"])
    assert shop.ok("databases/list")[0]["name"] == "main"
    status, body = shop("profiles/add", db_id=db["id"], data={"email": "a@example.com"})
    assert status == 403 and body["error"] == 403 and "frozen" in body["error_text"]
    admin.ok("admin/accounts/unfreeze", id=account["id"])
    shop.ok("profiles/add", db_id=db["id"], data={"email": "a@example.com"})
    admin.ok("admin/accounts/deactivate", id=account["id"])
    status, body = shop("databases/list")
    assert status == 403 and body["error"] == 403
    admin.ok("admin/accounts/activate", id=account["id"])
    assert shop.ok("databases/list")


def test_revoked_token_and_deleted_user(admin):
    account, shop = make_account(admin, "revoker")
    created = admin.ok("admin/tokens/add", account_id=account["id"])
    extra = Client(admin.http, created["token"])
    assert extra.ok("databases/list") == []
    admin.ok("admin/tokens/revoke", id=created["id"])
    assert extra("databases/list")[0] == 401
    user = admin.ok("admin/accounts/users/list", account_id=account["id"])[0]
    admin.ok("admin/accounts/users/delete", id=user["id"])
    assert shop("databases/list")[0] == 401


def test_account_delete_removes_users_tokens_and_data(admin, platform):
    account, shop = make_account(admin, "doomed")
    db = shop.ok("databases/add", name="main")
    shop.ok("profiles/add", db_id=db["id"], data={"email": "a@example.com"})
    admin.ok("admin/accounts/delete", id=account["id"])
    assert shop("databases/list")[0] == 401
    assert platform.control.users.count_documents({"account_id": account["id"]}) == 0
    name = platform.account_db(account["id"]).name
    assert name not in platform.account_client.list_database_names()


def test_accounts_list_pages_by_id(admin):
    # Altcraft's paging: from_id is the first id returned (it was exclusive here before #16)
    ids = [admin.ok("admin/accounts/save", name=f"page{i}")["id"] for i in range(3)]
    status, body = admin("admin/accounts/list/", from_id=ids[1], limit=1)
    assert status == 200 and [a["id"] for a in body["data"]] == [ids[1]]
    assert body["total_count"] == 3 and body["next_from_id"] == ids[1] + 1
    rest = admin("admin/accounts/list/", from_id=body["next_from_id"])[1]
    assert [a["id"] for a in rest["data"]] == [ids[2]]
    assert admin("admin/accounts/list/", from_id=rest["next_from_id"])[1]["data"] == []


def test_bad_input_names_what_is_wrong(admin):
    _, shop = make_account(admin, "sloppy")
    status, body = shop("profiles/get", db_id="x", bogus=1)
    assert status == 400 and "db_id:" in body["error_text"] and "bogus: unknown parameter" in body["error_text"]
    db = shop.ok("databases/add", name="main", fields=[{"name": "score", "type": "integer"}])
    status, body = shop("profiles/add", db_id=db["id"], data={"email": "ok@example.com", "score": "many"})
    assert (status, body["error_text"]) == (400, "data.score: not an integer")
    status, body = shop("profiles/add", db_id=db["id"], data={"email": "ok@example.com", "shoe_size": 42})
    assert body["error_text"] == f"data.shoe_size: not a field of database {db['id']}"
    status, body = shop("profiles/add", db_id=db["id"], data={"first_name": "Keyless"})
    assert body["error_text"] == "data.email: missing: it is the database's key"
    shop.ok("profiles/add", db_id=db["id"], data={"email": "ok@example.com"})
    status, body = shop("profiles/add", db_id=db["id"], data={"email": "OK@example.com"})
    assert status == 409 and body["error"] == 409
    raw = shop.http.post("/api/v1.1/databases/list", data="{not json", content_type="application/json")
    assert raw.status_code == 400 and raw.get_json()["error_text"].startswith("(body): not valid JSON")
    missing = shop.http.post("/api/v1.1/no/such/thing", json={})
    assert missing.status_code == 404 and missing.get_json()["error"] == 404
    assert shop.http.get("/api/v1.1/databases/list").status_code == 405


def test_altcraft_shared_optional_parameters_are_accepted_and_unknown_keys_still_named(admin):
    _, shop = make_account(admin, "shared-opts")
    db = shop.ok("databases/add", name="main", format="json", ui_tags=["a"], groups=[1, "b"], groups_id=[2])
    assert db["name"] == "main" and "format" not in db
    assert shop.ok("segments/list", format="json") == []
    status, body = shop("databases/list", format="xml")
    assert status == 400 and body["error_text"].startswith("format:") and "json" in body["error_text"]
    status, body = shop("databases/list", groups_id=[2 ** 63])
    assert status == 400 and body["error_text"].startswith("groups_id.0:")
    status, body = shop("databases/list", format="json", frobnicate=1)
    assert status == 400 and body["error_text"] == "frobnicate: unknown parameter"


def test_token_in_an_authorization_bearer_header(admin):
    _, shop = make_account(admin, "bearer")

    def call(headers, **params):
        response = shop.http.post("/api/v1.1/databases/list", json=params, headers=headers)
        return response.status_code, response.get_json()

    assert call({"Authorization": f"Bearer {shop.token}"})[0] == 200
    assert call({"Authorization": f"bearer {shop.token}"}, token=shop.token)[0] == 200  # the same one twice
    status, body = call({"Authorization": f"Bearer {shop.token}"}, token=admin.token)
    assert status == 400 and body["error_text"].startswith("token: differs from the token in the Authorization")
    status, body = call({"Authorization": f"Basic {shop.token}"})
    assert status == 401 and body["error"] == 401 and body["error_text"].startswith("Authorization:")
    status, body = call({"Authorization": "Bearer not-a-token"})
    assert status == 401 and body["error"] == 401
    status, body = call({"Authorization": f"Bearer {admin.token}"})  # the same scope checks as a body token
    assert status == 403 and body["error"] == 403


def test_form_parameters_work_like_json(admin):
    _, shop = make_account(admin, "formy")
    response = shop.http.post("/api/v1.1/databases/add", data={
        "token": shop.token, "name": "forms", "fields": '[{"name": "vip", "type": "boolean"}]'})
    body = response.get_json()
    assert response.status_code == 200 and body["data"]["fields"][0]["name"] == "vip"
    response = shop.http.post("/api/v1.1/profiles/add", data={
        "token": shop.token, "db_id": str(body["data"]["id"]), "data": '{"email": "f@example.com", "vip": "yes"}'})
    assert response.get_json()["data"]["data"] == {"email": "f@example.com", "vip": True}


def test_import_batch_through_the_api(admin):
    # the batch import moved from profiles/import to profiles/import_batch: Altcraft's
    # profiles/import takes one profile (issue #16), its profiles/import_batch a list
    _, shop = make_account(admin, "bulk")
    db = shop.ok("databases/add", name="main")
    rows = [{"email": f"u{i}@example.com", "first_name": "Ivan"} for i in range(50)]
    rows[7] = {"email": "broken"}
    rows[9] = {"email": "u3@example.com"}
    first = shop.ok("profiles/import_batch", db_id=db["id"], data=rows)
    assert (first["inserted"], first["failed"]) == (48, 2)
    assert first["errors"] == [
        {"index": 7, "field": "email", "reason": "not a valid e-mail address"},
        {"index": 9, "field": "email", "reason": "duplicate key in the file (first at index 3)"},
    ]
    again = shop.ok("profiles/import_batch", db_id=db["id"], data=rows)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 48)
    rows[0] = {"email": "u0@example.com", "city": "Omsk"}
    third = shop.ok("profiles/import_batch", db_id=db["id"], data=rows, dry_run=True)
    assert third["dry_run"] and third["inserted"] == third["updated"] == 0 and third["valid"] == 48
    fourth = shop.ok("profiles/import_batch", db_id=db["id"], data=rows)
    assert fourth["updated"] == 1
    profile = shop.ok("profiles/get", db_id=db["id"], email="u0@example.com")
    assert profile["data"] == {"email": "u0@example.com", "first_name": "Ivan", "gender": "m", "city": "Omsk"}


def test_openapi_document_matches_the_api(admin):
    from openapi_spec_validator import validate

    document = admin.http.get("/api/v1.1/openapi.json").get_json()
    validate(document)
    documented = {path.removeprefix("/api/v1.1/") for path in document["paths"]}
    assert documented == set(registry_api.endpoints)
    for path, item in document["paths"].items():
        schema = document["components"]["schemas"][item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
        endpoint = registry_api.endpoints[path.removeprefix("/api/v1.1/")]
        assert set(schema["properties"]) == set(endpoint.params.model_fields) | {"token"} | set(SHARED_KEYS)
        # every documented method answers (here: 401 without a token), none is unknown
        response = admin.http.post(path, json={})
        assert response.status_code == 401 and response.get_json()["error"] == 401, path
