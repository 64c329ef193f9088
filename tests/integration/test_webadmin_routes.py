"""Every route of webadmin, against the real stores: anonymous visitors are sent to the
sign-in page, changes need the CSRF token, a webcontrol user's session opens nothing here,
every page carries the strict CSP.

CASES must name every (endpoint, method) the app registers: a new route without a case fails
test_every_route_has_a_case, so no route escapes the checks below.
"""

from __future__ import annotations

import io
import re
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from altcraft import registry
from altcraft.domain.audit import Filter
from altcraft.web.admin import create_app
from tests.lib.webpanel import PASSWORD, admin_signin, make_admin, make_tenant, other_first, signin, token_of

pytestmark = pytest.mark.integration


@dataclass
class World:
    platform: object
    admin: dict
    account: dict  # edited, flagged and at last deleted by the cases
    user: dict  # a user of the account: edited, its password reset, locked, unlocked
    token_id: int  # revoked by its case
    contact: str  # added to the stop list and removed again
    imported: str  # listed by the import case
    sender_id: int = 0  # assigned to the account: its virtual senders name it
    vsender_id: int = 0  # deleted by its case

    def vsender_count(self) -> int:
        return len(self.platform.vsenders.list(self.account["id"]))

    def account_count(self) -> int:
        return self.platform.accounts.collection.count_documents({})

    def user_state(self) -> tuple:
        doc = self.platform.users.collection.find_one({"id": self.user["id"]}) or {}
        return doc.get("roles"), doc.get("lang"), doc.get("password_hash"), doc.get("active")

    def user_count(self) -> int:
        return self.platform.users.collection.count_documents({"account_id": self.account["id"]})

    def token_state(self) -> tuple:
        return self.platform.tokens.collection.count_documents({}), \
            self.platform.tokens.get(self.token_id)["revoked"]

    def listed(self, contact: str) -> bool:
        from altcraft.domain.stoplist import StopList
        from altcraft.stores import kv
        return StopList(kv.ssdb(self.platform.config, "hbsupp")).contains(contact)

    def account_state(self) -> tuple:
        doc = self.platform.accounts.collection.find_one({"id": self.account["id"]}) or {}
        return doc.get("title"), doc.get("active"), doc.get("frozen"), bool(doc)


@dataclass
class Case:
    url: Callable[[World], str]
    data: Callable[[World], dict] = lambda w: {}
    state: Callable[[World], object] | None = None  # for changes: what they change
    of_account: bool = True  # its journal entry names the account (the stop list and tokens are the platform's)
    reads: bool = False  # a POST that only reads (its input kept out of the URL): CSRF, but a viewer may


def _acc(w: World) -> str:
    return f"/accounts/{w.account['id']}"


def _user(w: World) -> str:
    return f"{_acc(w)}/users/{w.user['id']}"


def _import_file(w: World) -> dict:
    return {"file": (io.BytesIO(f"email\n{w.imported}\n".encode()), "list.csv")}


def _flag(action: str) -> Case:
    return Case(lambda w: f"{_acc(w)}/{action}", state=World.account_state)


# -- the MTA pages' world: a sender made on first use (an Ed25519 key: quick to generate)
def _sender(w: World) -> dict:
    if "sender" not in w.__dict__:
        w.__dict__["sender"] = w.platform.senders.save(name=f"news-{uuid.uuid4().hex[:6]}",
                                                       from_email="news@shop.example", dkim_algorithm="ed25519")
    return w.__dict__["sender"]


def _snd(w: World) -> str:
    return f"/senders/{_sender(w)['id']}"


def _sender_state(w: World) -> tuple:
    doc = w.platform.senders.collection.find_one({"id": _sender(w)["id"]})
    return doc["from_name"], doc["dkim_dns_record"], tuple(doc["accounts"]), doc["deleted"]


def _rules_form(w: World) -> dict:
    """The rules page's form as a browser posts it: the rules in force with another interval."""
    from altcraft.web.admin import mta_form
    values = mta_form.to_form(w.platform.config.MTA)
    values.update({"base_version": str(w.platform.mta_rules.version()),
                   "RETRY.INTERVAL_SECONDS": str(60 + w.platform.mta_rules.version()),
                   "BOUNCE_PATTERNS[0].TYPE": "hard", "BOUNCE_PATTERNS[0].PATTERN": "user unknown"})
    return values


MTA_CASES: dict[tuple[str, str], Case] = {
    ("admin.senders", "GET"): Case(lambda w: "/senders"),
    ("admin.sender_new", "GET"): Case(lambda w: "/senders/new"),
    ("admin.sender_new", "POST"): Case(lambda w: "/senders/new", data=lambda w: {
        "name": f"s-{uuid.uuid4().hex[:6]}", "from_email": "info@shop.example", "dkim_selector": "ak",
        "dkim_algorithm": "ed25519"}, state=lambda w: w.platform.senders.collection.count_documents({}), of_account=False),
    ("admin.sender", "GET"): Case(_snd),
    ("admin.sender", "POST"): Case(_snd, data=lambda w: {
        "name": _sender(w)["name"], "from_email": "news@shop.example", "from_name": f"Shop {uuid.uuid4().hex[:6]}",
        "dkim_selector": "ak", "ips": "127.0.0.1"}, state=_sender_state, of_account=False),
    ("admin.sender_dkim", "POST"): Case(lambda w: f"{_snd(w)}/dkim", data=lambda w: {"dkim_algorithm": "ed25519"},
                                        state=_sender_state, of_account=False),
    ("admin.sender_assign", "POST"): Case(lambda w: f"{_snd(w)}/assign", data=lambda w: {"account": w.account["name"]},
                                          state=_sender_state),
    ("admin.sender_unassign", "POST"): Case(lambda w: f"{_snd(w)}/unassign",
                                            data=lambda w: {"account": str(w.account["id"])}, state=_sender_state),
    ("admin.sender_delete", "POST"): Case(lambda w: f"{_snd(w)}/delete", state=_sender_state, of_account=False),
    ("admin.sender_undelete", "POST"): Case(lambda w: f"{_snd(w)}/undelete", state=_sender_state, of_account=False),
    ("admin.mta_rules", "GET"): Case(lambda w: "/mta/rules"),
    ("admin.mta_rules", "POST"): Case(lambda w: "/mta/rules", data=_rules_form,
                                      state=lambda w: w.platform.mta_rules.version(), of_account=False),
    ("admin.queues", "GET"): Case(lambda w: "/queues"),
    # with akmtad down (as here) an action changes nothing and says so (503): the probe is
    # the journal; test_webadmin_mta.py makes them against a running akmtad
    ("admin.queue_hold", "POST"): Case(lambda w: f"/queues/{_sender(w)['id']}/hold",
                                       state=lambda w: w.platform.journal.head(), of_account=False),
    ("admin.queue_release", "POST"): Case(lambda w: f"/queues/{_sender(w)['id']}/release",
                                          state=lambda w: w.platform.journal.head(), of_account=False),
    ("admin.queue_purge", "GET"): Case(lambda w: f"/queues/{_sender(w)['id']}/purge"),
    ("admin.queue_purge", "POST"): Case(lambda w: f"/queues/{_sender(w)['id']}/purge",
                                        data=lambda w: {"confirm": _sender(w)["name"]},
                                        state=lambda w: w.platform.journal.head(), of_account=False),
}
QUEUE_ACTIONS = {("admin.queue_hold", "POST"), ("admin.queue_release", "POST"), ("admin.queue_purge", "POST")}


# (endpoint, method) -> Case; ordered so that each change finds the account in the state it
# changes (deactivate before activate, freeze before unfreeze, delete last)
CASES: dict[tuple[str, str], Case] = {
    ("root", "GET"): Case(lambda w: "/"),
    ("admin.accounts", "GET"): Case(lambda w: "/accounts"),
    ("admin.account_new", "GET"): Case(lambda w: "/accounts/new"),
    ("admin.account_new", "POST"): Case(lambda w: "/accounts/new",
                                        data=lambda w: {"name": f"acc-{uuid.uuid4().hex[:8]}", "tz": "UTC"},
                                        state=World.account_count),
    ("admin.account", "GET"): Case(_acc),
    ("admin.account", "POST"): Case(_acc, data=lambda w: {"name": w.account["name"],
                                                          "title": f"T {uuid.uuid4().hex[:6]}", "tz": "UTC",
                                                          "tariff": "pro"},
                                    state=World.account_state),
    ("admin.vsender_add", "POST"): Case(lambda w: f"/accounts/{w.account['id']}/vsenders",
                                        data=lambda w: {"vsender_name": f"vs-{uuid.uuid4().hex[:6]}",
                                                        "vsender_rules": json.dumps([{"match": "default", "senders": [
                                                            {"id": w.sender_id, "weight": 1}]}])},
                                        state=World.vsender_count),
    ("admin.vsender_delete", "POST"): Case(lambda w: f"/accounts/{w.account['id']}/vsenders/{w.vsender_id}/delete",
                                           state=World.vsender_count),
    ("admin.account_deactivate", "POST"): _flag("deactivate"),
    ("admin.account_activate", "POST"): _flag("activate"),
    ("admin.account_freeze", "POST"): _flag("freeze"),
    ("admin.account_unfreeze", "POST"): _flag("unfreeze"),
    ("admin.totp_enrol", "GET"): Case(lambda w: "/totp"),
    # a wrong code changes nothing, so the state probe is the admin's enrolled secret
    ("admin.totp_enrol", "POST"): Case(lambda w: "/totp", data=lambda w: {"code": "000000"},
                                       state=lambda w: w.platform.admins.get(w.admin["id"]).get("totp_secret")),
    ("admin.audit", "GET"): Case(lambda w: f"/audit?account={w.account['id']}&channel=webadmin&since=2020-01-01"),
    ("admin.system", "GET"): Case(lambda w: "/system"),
    **MTA_CASES,  # before the account is deleted: senders are assigned to it
    ("admin.account_users", "GET"): Case(lambda w: f"{_acc(w)}/users"),
    ("admin.account_users", "POST"): Case(lambda w: f"{_acc(w)}/users", state=World.user_count,
                                          data=lambda w: {"login": f"u-{uuid.uuid4().hex[:8]}", "password": PASSWORD,
                                                          "roles": ["editor"], "lang": "ru"}),
    ("admin.account_user", "GET"): Case(_user),
    ("admin.account_user", "POST"): Case(_user, data=lambda w: {"roles": ["analyst"], "lang": "ru", "name": "N"},
                                         state=World.user_state),
    ("admin.account_user_password", "POST"): Case(lambda w: f"{_user(w)}/password", state=World.user_state,
                                                  data=lambda w: {"password": PASSWORD + "2", "password_repeat": PASSWORD + "2"}),
    ("admin.account_user_lock", "POST"): Case(lambda w: f"{_user(w)}/lock", state=World.user_state),
    ("admin.account_user_unlock", "POST"): Case(lambda w: f"{_user(w)}/unlock", state=World.user_state),
    ("admin.tokens", "GET"): Case(lambda w: "/tokens?prefix=a"),
    ("admin.token_create", "POST"): Case(lambda w: "/tokens", state=World.token_state, of_account=False,
                                         data=lambda w: {"scope": "admin", "name": "t"}),
    ("admin.token_revoke", "GET"): Case(lambda w: f"/tokens/{w.token_id}/revoke"),
    ("admin.token_revoke", "POST"): Case(lambda w: f"/tokens/{w.token_id}/revoke", state=World.token_state,
                                         of_account=False),
    ("admin.stoplist", "GET"): Case(lambda w: "/stoplist"),
    ("admin.stoplist_lookup", "POST"): Case(lambda w: "/stoplist", data=lambda w: {"contact": w.contact},
                                            state=lambda w: w.platform.journal.head(), of_account=False, reads=True),
    ("admin.stoplist_add", "POST"): Case(lambda w: "/stoplist/add", data=lambda w: {"contact": w.contact},
                                         state=lambda w: w.listed(w.contact), of_account=False),
    ("admin.stoplist_remove", "POST"): Case(lambda w: "/stoplist/remove", data=lambda w: {"contact": w.contact},
                                            state=lambda w: w.listed(w.contact), of_account=False),
    ("admin.stoplist_import", "POST"): Case(lambda w: "/stoplist/import", data=_import_file,
                                            state=lambda w: w.listed(w.imported), of_account=False),
    ("admin.account_delete", "GET"): Case(lambda w: f"{_acc(w)}/delete"),
    ("admin.account_delete", "POST"): Case(lambda w: f"{_acc(w)}/delete", data=lambda w: {"confirm": w.account["name"]},
                                           state=World.account_state),
}
# Routes each tested on their own: the process's probes (test_webadmin_process.py), static
# files, sign-in/out, the admin's own password, and the TOTP step after the password
# (test_webadmin_totp.py: it answers only a half-signed-in visitor).
SERVICE = {("health", "GET"), ("ready", "GET"), ("metrics", "GET"), ("web.static", "GET"),
           ("web.signin", "GET"), ("web.signin", "POST"), ("web.signout", "POST"),
           ("web.password", "GET"), ("web.password", "POST"),
           ("admin.totp", "GET"), ("admin.totp", "POST")}
PAGES = {k: c for k, c in CASES.items() if k[1] == "GET"}
POSTS = {k: c for k, c in CASES.items() if k[1] != "GET"}  # each needs the CSRF token
READS = {k: c for k, c in POSTS.items() if c.reads}
CHANGES = {k: c for k, c in POSTS.items() if not c.reads}
# the enrolment POST with a wrong code is refused (400) by design: no change to observe
# and akmtad's queue actions, made against a running akmtad in test_webadmin_mta.py
MADE = {k: c for k, c in CHANGES.items() if k != ("admin.totp_enrol", "POST") and k not in QUEUE_ACTIONS}
NONCE = re.compile(r"'nonce-([A-Za-z0-9_-]+)'")


@pytest.fixture
def app(config):
    return create_app(config, registry.get("webadmin"))


@pytest.fixture
def world(platform) -> World:
    account = platform.accounts.save(name=f"acc-{uuid.uuid4().hex[:8]}")
    user = platform.users.add(account["id"], f"u-{uuid.uuid4().hex[:8]}", PASSWORD)
    _, token = platform.tokens.create("account", account["id"])
    tag = uuid.uuid4().hex[:10]
    sender = platform.senders.save(name=f"vs-{tag}", from_email="news@shop.example", dkim_algorithm="none")
    platform.senders.assign(sender["id"], account["id"])
    vsender = platform.vsenders.add(account["id"], "gone", [{"match": "default", "senders": [{"id": sender["id"], "weight": 1}]}])
    return World(platform, make_admin(platform), account, user, token["id"], f"stop-{tag}@example.com",
                 f"imported-{tag}@example.com", sender["id"], vsender["id"])


def test_every_route_has_a_case(app):
    routes = {(rule.endpoint, method) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    missing = routes - set(CASES) - SERVICE
    stale = (set(CASES) | SERVICE) - routes
    assert not missing, f"routes without a security case in CASES: {sorted(missing)}"
    assert not stale, f"cases for routes that do not exist: {sorted(stale)}"


def test_anonymous_is_sent_to_sign_in_and_changes_nothing(app, world):
    client = app.test_client()
    token = token_of(client.get("/signin").data)
    for (endpoint, method), case in CASES.items():
        before = case.state(world) if case.state else None
        response = client.open(case.url(world), method=method, data={**case.data(world), "csrf_token": token})
        assert response.status_code == 302, (endpoint, method, response.status_code)
        assert response.headers["Location"].startswith("/signin"), (endpoint, response.headers["Location"])
        if case.state:
            assert case.state(world) == before, f"{endpoint}: an anonymous request changed data"


def test_a_webcontrol_session_opens_nothing_here(app, world, config, platform):
    """A signed-in webcontrol user's cookie, sent to webadmin under either cookie name, is
    no session here (another name, another key), so every route sends it to sign in."""
    from altcraft.web.control import create_app as create_control
    tenant = make_tenant(platform, profiles=0)
    control = create_control(config, registry.get("webcontrol")).test_client()
    token = signin(control, tenant.writer)
    value = control.get_cookie("ak_webcontrol").value
    for name in ("ak_webcontrol", "ak_webadmin"):
        client = app.test_client()
        client.set_cookie(name, value)
        for (endpoint, method), case in CASES.items():
            before = case.state(world) if case.state else None
            response = client.open(case.url(world), method=method, data={**case.data(world), "csrf_token": token},
                                   headers={"X-CSRF-Token": token})
            assert response.status_code in (302, 400), (name, endpoint, method, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/signin"), (name, endpoint)
            if case.state:
                assert case.state(world) == before, f"{endpoint}: a webcontrol session changed data"


def test_change_without_csrf_token_is_refused_and_changes_nothing(app, world):
    client = app.test_client()
    good = admin_signin(client, world.admin["login"])
    for (endpoint, method), case in POSTS.items():
        for label, extra, headers in (("no token", {}, {}),
                                      ("wrong token", {"csrf_token": other_first(good)}, {}),
                                      ("wrong header", {}, {"X-CSRF-Token": other_first(good[::-1])[::-1]})):
            before = case.state(world)
            response = client.open(case.url(world), method=method, data={**case.data(world), **extra},
                                   headers=headers)
            assert response.status_code == 400, (endpoint, label, response.status_code)
            assert case.state(world) == before, f"{endpoint} ({label}) changed data"


def test_admin_changes_with_the_token(app, world):
    """The other side of the refusals: with the token each change is made, so the state
    probes do see changes; the delete needs the account's name typed."""
    client = app.test_client()
    token = admin_signin(client, world.admin["login"])
    wrong = client.post(f"{_acc(world)}/delete", data={"confirm": world.account["name"] + "x", "csrf_token": token})
    assert wrong.status_code == 400 and world.account_state()[3]
    journal = world.platform.journal
    assert journal.head() == 0  # the refused delete above wrote nothing
    for (endpoint, method), case in MADE.items():
        before, head = case.state(world), journal.head()
        response = client.open(case.url(world), method=method, data={**case.data(world), "csrf_token": token})
        assert response.status_code in (200, 302), (endpoint, response.status_code)
        assert case.state(world) != before, f"{endpoint}: the change was not made"
        # each change is exactly one audit entry, under the admin's name
        assert journal.head() == head + 1, f"{endpoint}: {journal.head() - head} journal entries, not one"
        entry, = journal.list(Filter(limit=1))
        assert (entry["action"], entry["channel"], entry["actor_kind"], entry["actor_name"]) == \
            (endpoint, "webadmin", "admin", world.admin["login"]), entry
        assert bool(entry["account_id"]) == case.of_account and "csrf_token" not in entry["summary"], entry
        assert PASSWORD not in str(entry["summary"]), entry  # no password, nor its repetition
        assert world.contact not in str(entry["summary"]), entry  # the stop list's hash only
    assert b"akmtad is not running" in client.get("/queues").data
    for action in ("hold", "release"):  # akmtad is not running here: said, nothing journaled
        head = journal.head()
        response = client.post(f"/queues/{_sender(world)['id']}/{action}", data={"csrf_token": token})
        assert response.status_code == 503 and b"akmtad is not running" in response.data, action
        assert journal.head() == head, action
    assert not world.account_state()[3]  # deleted
    page = client.get(f"/audit?actor={world.admin['login']}&channel=webadmin").data.decode()
    assert page.count('data-testid="audit-row-') == len(MADE) and "admin.account_freeze" in page


def _check_csp(response, endpoint: str) -> str:
    policy = response.headers.get("Content-Security-Policy", "")
    assert policy, f"{endpoint}: no Content-Security-Policy"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, endpoint
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, endpoint
    (nonce,) = set(NONCE.findall(policy))
    html = response.data.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        if 'type="application/json"' not in tag:
            assert f'nonce="{nonce}"' in tag, f"{endpoint}: a script without this response's nonce: {tag}"
    assert not re.search(r"\son[a-z]+=", html), f"{endpoint}: an inline event handler"
    assert not re.search(r"\sstyle=", html), f"{endpoint}: an inline style attribute"
    return nonce


def test_csp_on_every_page_with_a_fresh_nonce(app, world):
    client = app.test_client()
    _check_csp(client.get("/signin"), "web.signin")
    admin_signin(client, world.admin["login"])
    for (endpoint, _), case in PAGES.items():
        first = client.get(case.url(world), follow_redirects=True)
        second = client.get(case.url(world), follow_redirects=True)
        assert first.status_code == 200, endpoint
        assert _check_csp(first, endpoint) != _check_csp(second, endpoint), f"{endpoint}: the nonce repeats"
    missing = client.get("/accounts/999999999")
    assert missing.status_code == 404 and missing.headers.get("Content-Security-Policy")


def _viewer(world: World) -> dict:
    viewer = make_admin(world.platform)
    world.platform.admins.collection.update_one({"id": viewer["id"]}, {"$set": {"role": "viewer"}})
    return viewer


def test_a_viewer_sees_every_page_and_changes_nothing(app, world):
    """A `viewer` administrator (a directory group mapped to that role) gets every page and a
    403 for every change, with the CSRF token: nothing changes, nothing is journaled."""
    client = app.test_client()
    token = admin_signin(client, _viewer(world)["login"])
    for (endpoint, _), case in PAGES.items():
        assert client.get(case.url(world)).status_code in (200, 302), endpoint
    journal = world.platform.journal
    for (endpoint, method), case in CHANGES.items():
        if endpoint == "admin.totp_enrol":
            continue  # a viewer's own second factor, like its own password, is its to set
        before, head = case.state(world), journal.head()
        response = client.open(case.url(world), method=method, data={**case.data(world), "csrf_token": token})
        assert response.status_code == 403, (endpoint, response.status_code)
        assert case.state(world) == before, f"{endpoint}: a viewer changed data"
        assert journal.head() == head, f"{endpoint}: a viewer's refused change was journaled"


def test_a_read_by_post_answers_an_admin_and_a_viewer_and_journals_nothing(app, world):
    """The POSTs that only read (`reads_only`: the stop list's lookup, whose address must not
    be in a URL) need the CSRF token (test_change_without_csrf_token_...), and with it answer
    an admin and a viewer alike, as a page would; no journal entry either way."""
    assert READS, "no read-only POST route left to check"
    journal = world.platform.journal
    for login in (world.admin["login"], _viewer(world)["login"]):
        client = app.test_client()
        token = admin_signin(client, login)
        for (endpoint, method), case in READS.items():
            head = journal.head()
            response = client.open(case.url(world), method=method, data={**case.data(world), "csrf_token": token})
            assert response.status_code == 200, (login, endpoint, response.status_code)
            assert journal.head() == head, f"{endpoint}: a read was journaled"
