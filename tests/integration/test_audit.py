"""The audit journal against the real stores: every state-changing API endpoint writes exactly
one entry (reads and refused calls none) with no secret in it; concurrent writers keep one
chain; a deleted or edited entry makes `aktool audit verify` fail naming where."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from altcraft.domain.audit import COLUMNS, Actor, Break, Entry, Filter, _row
from altcraft.services.apiv11 import api as registry_api
from tests.lib.api import STRONG, Client, make_account
from tests.lib.cli import run
from tests.lib.wait import wait_for
from tests.lib.workflows import welcome

pytestmark = pytest.mark.integration

PEM_MARK = "MIIE"  # every RSA private key's PEM body starts so
# akmtad's queue control needs akmtad running: refused here (503), so they must write nothing
NEED_AKMTAD = {"admin/senders/queue/stats/", "admin/senders/queue/hold", "admin/senders/queue/release", "admin/senders/queue/purge/"}


def _calls(ids: dict) -> list[tuple[str, Callable[[], dict], str]]:
    """(path, params, who) for every registered endpoint, in an order where each finds what it needs."""
    a = "admin"
    s = "shop"
    return [
        ("admin/accounts/list/", lambda: {}, a),
        ("admin/accounts/save", lambda: {"name": "journal-two", "title": "Two"}, a),
        ("admin/accounts/deactivate", lambda: {"id": ids["account2"]}, a),
        ("admin/accounts/activate", lambda: {"id": ids["account2"]}, a),
        ("admin/accounts/freeze", lambda: {"id": ids["account2"]}, a),
        ("admin/accounts/unfreeze", lambda: {"id": ids["account2"]}, a),
        ("admin/accounts/users/list", lambda: {"account_id": ids["account"]}, a),
        ("admin/accounts/users/add", lambda: {"account_id": ids["account2"], "login": "journal-u",
                                              "password": STRONG + "x"}, a),
        ("admin/accounts/users/update", lambda: {"id": ids["user2"], "password": STRONG + "y", "name": "U"}, a),
        ("admin/tokens/add", lambda: {"account_id": ids["account2"], "name": "t2"}, a),
        ("admin/tokens/revoke", lambda: {"id": ids["token2"]}, a),
        ("admin/accounts/users/delete", lambda: {"id": ids["user2"]}, a),
        ("admin/senders/save", lambda: {"name": "news", "from_email": "news@shop.example",
                                        "dkim_selector": "s1"}, a),
        ("admin/senders/list/", lambda: {}, a),
        ("admin/senders/get", lambda: {"id": ids["sender"]}, a),
        ("admin/senders/assign", lambda: {"id": ids["sender"], "account_id": ids["account"]}, a),
        ("admin/senders/queue/stats/", lambda: {"id": ids["sender"]}, a),
        ("admin/senders/queue/hold", lambda: {"id": ids["sender"]}, a),
        ("admin/senders/queue/release", lambda: {"id": ids["sender"]}, a),
        ("admin/senders/queue/purge/", lambda: {"id": ids["sender"]}, a),
        ("admin/vsenders/add", lambda: {"account_id": ids["account"], "name": "v",
                                        "rules": [{"match": "default", "senders": [{"id": ids["sender"], "weight": 1}]}]}, a),
        ("admin/vsenders/list", lambda: {"account_id": ids["account"]}, a),
        ("admin/vsenders/get", lambda: {"account_id": ids["account"], "id": ids["vsender"]}, a),
        ("admin/vsenders/update", lambda: {"account_id": ids["account"], "id": ids["vsender"], "name": "v2"}, a),
        ("admin/vsenders/clone", lambda: {"account_id": ids["account"], "id": ids["vsender"], "name": "v3"}, a),
        ("admin/vsenders/delete", lambda: {"account_id": ids["account"], "id": ids["vsender"]}, a),
        ("senders/list", lambda: {}, s),
        ("vsenders/add", lambda: {"name": "own", "sms_rules": [], "email_rules": [
            {"type": "default", "value": "", "senders": [{"sender_id": ids["sender"], "percent": 100}]}]}, s),
        ("vsenders/list", lambda: {}, s),
        ("vsenders/get", lambda: {"id": ids["own_vsender"]}, s),
        ("vsenders/update", lambda: {"id": ids["own_vsender"], "name": "own2"}, s),
        ("vsenders/clone", lambda: {"id": ids["own_vsender"]}, s),
        ("vsenders/delete", lambda: {"id": ids["own_vsender"]}, s),
        ("databases/add", lambda: {"name": "main", "fields": [{"name": "password", "type": "string"}]}, s),
        ("databases/list", lambda: {}, s),
        ("databases/update", lambda: {"id": ids["db"], "name": "main2"}, s),
        ("profiles/add", lambda: {"db_id": ids["db"], "data": {"email": "anna@example.com", "city": "Kazan",
                                                               "password": "profile-secret-1"}}, s),
        ("profiles/get", lambda: {"db_id": ids["db"], "profile_id": ids["profile"]}, s),
        ("profiles/update", lambda: {"db_id": ids["db"], "profile_id": ids["profile"], "data": {"city": "Omsk"}}, s),
        ("profiles/import_batch", lambda: {"db_id": ids["db"], "data": [{"email": "b@example.com"}]}, s),
        ("profiles/import", lambda: {"db_id": ids["db"], "data": {"email": "b2@example.com"}}, s),
        ("subscriptions/set", lambda: {"db_id": ids["db"], "profile_id": ids["profile"], "resource_id": 1,
                                       "channel": "email", "email": "anna@example.com", "status": "subscribed"}, s),
        ("subscriptions/list", lambda: {"db_id": ids["db"], "profile_id": ids["profile"]}, s),
        ("subscriptions/get", lambda: {"db_id": ids["db"], "profile_id": ids["profile"], "resource_id": 1,
                                       "channel": "email"}, s),
        ("profiles/add_batch", lambda: {"db_id": ids["db"], "data": [{"email": "c@example.com"}]}, s),
        ("segments/add", lambda: {"name": "kazan", "db_id": ids["db"],
                                  "condition": {"field": "city", "op": "eq", "value": "Omsk"}}, s),
        # a static segment filled by hand (Altcraft's form): the segment the calls below use
        ("segments/add", lambda: {"name": "by hand", "is_static": True, "list_id": ids["db"]}, s),
        ("profiles/segstatic/add", lambda: {"segment_id": ids["segment"], "db_id": ids["db"],
                                            "profile_id": ids["profile"]}, s),
        ("profiles/segstatic/remove", lambda: {"segment_id": ids["segment"], "db_id": ids["db"],
                                               "profile_id": ids["profile"]}, s),
        ("segments/list", lambda: {}, s),
        ("segments/get", lambda: {"id": ids["segment"]}, s),
        ("segments/update", lambda: {"id": ids["segment"], "name": "omsk"}, s),
        ("segments/count", lambda: {"id": ids["segment"]}, s),
        ("templates/add", lambda: {"name": "t", "subject": "Hi", "html": "<p>Hi</p>"}, s),
        ("templates/list", lambda: {}, s),
        ("templates/get", lambda: {"id": ids["template"]}, s),
        ("templates/update", lambda: {"id": ids["template"], "subject": "Hello"}, s),
        ("templates/preview", lambda: {"id": ids["template"], "db_id": ids["db"], "profile_id": ids["profile"]}, s),
        ("campaigns/add", lambda: {"name": "c", "db_id": ids["db"], "segment_id": ids["segment"],
                                   "template_id": ids["template"], "sender_id": ids["sender"]}, s),
        ("campaigns/list", lambda: {}, s),
        ("campaigns/get", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/update", lambda: {"id": ids["campaign"], "name": "c2"}, s),
        ("campaigns/start", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/pause", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/resume", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/cancel", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/report", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/get_status", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/activate/", lambda: {"id": ids["campaign"], "run_now": True}, s),
        ("campaigns/deactivate", lambda: {"id": ids["campaign"], "abort_if_running": True}, s),
        ("campaigns/log_v2", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/clone", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/regulars/list/", lambda: {}, s),
        ("reports/hourly", lambda: {}, s),
        ("campaigns/delete", lambda: {"id": ids["campaign"]}, s),
        ("campaigns/triggers/add", lambda: {"name": "tr", "db_id": ids["db"], "template_id": ids["template"],
                                            "sender_id": ids["sender"]}, s),
        ("campaigns/triggers/list", lambda: {}, s),
        ("campaigns/triggers/get", lambda: {"id": ids["trigger"]}, s),
        ("campaigns/triggers/update", lambda: {"id": ids["trigger"], "name": "tr2"}, s),
        ("campaigns/triggers/start", lambda: {"id": ids["trigger"], "profile_id": ids["profile"]}, s),
        ("campaigns/triggers/start_batch", lambda: {"trigger_id": ids["trigger"],
                                                    "data": [{"profile_id": ids["profile"]}]}, s),
        ("campaigns/triggers/clone", lambda: {"id": ids["trigger"]}, s),
        ("campaigns/triggers/import_and_start", lambda: {"trigger_id": ids["trigger"],
                                                         "data": {"email": "c@example.com"}}, s),
        ("events/post", lambda: {"db_id": ids["db"], "profile_id": ids["profile"], "name": "visited"}, s),
        ("webhooks/add", lambda: {"url": "http://192.0.32.10/hook"}, s),
        ("webhooks/list", lambda: {}, s),
        ("webhooks/get", lambda: {"id": ids["webhook"]}, s),
        ("webhooks/update", lambda: {"id": ids["webhook"], "description": "d"}, s),
        ("webhooks/rotate_secret", lambda: {"id": ids["webhook"]}, s),
        ("webhooks/log", lambda: {}, s),
        ("webhooks/replay", lambda: {"webhook_id": ids["webhook"]}, s),
        ("webhooks/delete", lambda: {"id": ids["webhook"]}, s),
        ("workflows/add", lambda: {"name": "w", "db_id": ids["db"],
                                   "nodes": welcome(template_id=ids["template"], sender_id=ids["sender"])}, s),
        ("workflows/list", lambda: {}, s),
        ("workflows/get", lambda: {"id": ids["workflow"]}, s),
        ("workflows/update", lambda: {"id": ids["workflow"], "name": "w2"}, s),
        ("workflows/activate", lambda: {"id": ids["workflow"]}, s),
        ("workflows/start", lambda: {"id": ids["workflow"], "profile_id": ids["profile"]}, s),
        ("workflows/import_and_start_batch", lambda: {"id": ids["workflow"],
                                                      "data": [{"data": {"email": "w@example.com"}}]}, s),
        ("workflows/deactivate", lambda: {"id": ids["workflow"]}, s),
        ("segments/delete", lambda: {"id": ids["segment"]}, s),
        ("templates/delete", lambda: {"id": ids["template"]}, s),
        ("profiles/delete", lambda: {"db_id": ids["db"], "profile_id": ids["profile"]}, s),
        ("databases/delete", lambda: {"id": ids["db"]}, s),
        ("admin/senders/delete", lambda: {"id": ids["sender"]}, a),
        ("admin/senders/undelete/", lambda: {"id": ids["sender"]}, a),
        ("admin/accounts/delete", lambda: {"id": ids["account2"]}, a),
        ("admin/audit/list", lambda: {"limit": 5}, a),
        ("admin/mta/rules/save", lambda: {"rules": {"RETRY": {"TYPE": "fixed", "INTERVAL_SECONDS": 60}},
                                          "base_version": 0}, a),
        ("admin/mta/rules/get", lambda: {}, a),
        ("admin/mta/rules/history", lambda: {}, a),
    ]


CREATED = {"admin/accounts/save": "account2", "admin/accounts/users/add": "user2", "admin/tokens/add": "token2",
           "admin/senders/save": "sender", "admin/vsenders/add": "vsender", "databases/add": "db",
           "profiles/add": "profile", "segments/add": "segment", "templates/add": "template",
           "campaigns/add": "campaign", "campaigns/triggers/add": "trigger", "webhooks/add": "webhook",
           "workflows/add": "workflow", "vsenders/add": "own_vsender"}


def test_every_state_changing_endpoint_writes_exactly_one_entry_without_secrets(admin, platform):
    account, shop = make_account(admin, "journal")
    clients = {"admin": admin, "shop": shop}
    ids = {"account": account["id"]}
    secrets = {admin.token, shop.token, STRONG, STRONG + "x", STRONG + "y", "profile-secret-1"}
    calls = _calls(ids)
    assert {path for path, _, _ in calls} == set(registry_api.endpoints), \
        "a new endpoint needs a case here (and a journal entry if it changes state)"
    journal = platform.journal
    failed: dict[str, object] = {}
    for path, params, who in calls:
        endpoint = registry_api.endpoints[path]
        before = journal.head()
        status, body = clients[who](path, **params())
        after = journal.head()
        if status == 200:
            data = body["data"]
            if path in CREATED:  # Altcraft's creating methods answer {saved_id}
                ids[CREATED[path]] = data["id"] if "id" in data else data["saved_id"]
            for key in ("token", "secret"):
                if isinstance(data, dict) and isinstance(data.get(key), str):
                    secrets.add(data[key])
        else:
            failed[path] = (status, body["error_text"])
        if endpoint.write and status == 200:
            assert after == before + 1, f"{path}: {after - before} journal entries, not one"
            entry, = journal.list(Filter(limit=1))
            assert (entry["seq"], entry["action"], entry["channel"]) == (after, path.strip("/"), "api"), entry
            assert entry["actor_kind"] == "token" and entry["source"] == "127.0.0.1", entry
        else:
            assert after == before, f"{path} ({'refused' if status != 200 else 'a read'}) wrote to the journal"
    assert set(failed) == NEED_AKMTAD, f"calls that failed here: {failed}"

    sender = platform.senders.collection.find_one({"id": ids["sender"]})
    private = json.dumps(sender, default=str)
    assert PEM_MARK in private  # the generated DKIM key is stored...
    entries = journal.list(Filter(limit=1000))
    text = json.dumps(entries)
    assert PEM_MARK not in text  # ...and never journaled
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:4]}...) is in the journal"
    user_update = next(e for e in entries if e["action"] == "admin/accounts/users/update")
    assert user_update["summary"] == {"id": ids["user2"], "password": "[redacted]", "name": "U"}
    freeze = next(e for e in entries if e["action"] == "admin/accounts/freeze")
    assert (freeze["object_kind"], freeze["object_id"], freeze["account_id"]) == \
        ("admin/accounts", str(ids["account2"]), ids["account2"])
    # the admin API lists with filters
    only = admin.ok("admin/audit/list", account_id=ids["account2"], action="admin/accounts/", limit=3)
    assert [e["action"] for e in only] == ["admin/accounts/delete", "admin/accounts/users/update",
                                           "admin/accounts/users/add"]
    older = admin.ok("admin/audit/list", account_id=ids["account2"], action="admin/accounts/", from_id=only[-1]["seq"])
    assert [e["action"] for e in older] == ["admin/accounts/unfreeze", "admin/accounts/freeze",
                                            "admin/accounts/activate", "admin/accounts/deactivate",
                                            "admin/accounts/save"]
    assert journal.verify().ok


def test_concurrent_writers_keep_one_chain_and_a_deleted_or_edited_entry_is_named(platform, main_json):
    journal = platform.journal
    actor = Actor("system", "test", "tester", "127.0.0.1")
    # aktool journals its own changes (entry 1), never the token it prints
    made = run("aktool", "token", "create", "--admin", "--name", "ops", config=main_json)
    assert made.returncode == 0, made.stderr
    entry, = journal.list(Filter(limit=1))
    assert (entry["seq"], entry["channel"], entry["action"], entry["actor_kind"]) == (1, "aktool", "token.create", "system")
    assert entry["summary"]["name"] == "ops" and made.stdout.strip() not in json.dumps(entry)

    def write(n: int) -> None:
        from altcraft.wiring import Platform
        own = Platform(platform.config)  # one writer = one process's connections
        try:
            for i in range(n):
                own.journal.record(actor, "aktool", "test.append", changes={"i": i})
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(6,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    verdict = journal.verify()
    assert verdict.ok and verdict.entries == verdict.head == 25, verdict

    store = platform.analytics()
    table = store.table("audit")
    # an intruder deletes entry 7 (a mutation: 18.16 has ALTER TABLE ... DELETE, applied in the background)
    store.execute(f"ALTER TABLE {table} DELETE WHERE seq = 7")
    wait_for(lambda: not store.execute(f"SELECT count() FROM {table} WHERE seq = 7")[0][0], what="the delete")
    broken = run("aktool", "audit", "verify", "--json", config=main_json)
    assert broken.returncode == 1, (broken.stdout, broken.stderr)
    assert json.loads(broken.stdout) == {"ok": False, "entries": 6, "head": 25, "shipped": 0, "broken_at": 7,
                                         "reason": "entry missing (deleted)"}
    human = run("aktool", "audit", "verify", config=main_json)
    assert human.returncode == 1 and "BROKEN at entry 7: entry missing (deleted)" in human.stderr

    # entry 7 put back with its summary changed: its hash no longer matches
    seven = platform.control.audit_chain.find_one({"_id": 7})["entry"]
    store.insert("audit", COLUMNS, [_row(Entry(**{**seven, "summary": '{"i":99}'}))])
    assert journal.verify().broken == Break(7, "entry edited (hash does not match)")
    # deleting the tail too is found against the head the claims keep
    store.execute(f"ALTER TABLE {table} DELETE WHERE seq >= 7")
    wait_for(lambda: not store.execute(f"SELECT count() FROM {table} WHERE seq >= 7")[0][0], what="the delete")
    assert journal.verify().broken == Break(7, "entry missing (deleted): the chain's head is 25")
