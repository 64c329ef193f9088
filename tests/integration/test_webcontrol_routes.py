"""Every route of webcontrol, against the real stores: anonymous visitors are sent to the
sign-in page, changes need the CSRF token and a changing role, another account's ids are
not found, every page carries the strict CSP.

CASES must name every (endpoint, method) the app registers: a new route without a case fails
test_every_route_has_a_case, so no route escapes the checks below.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from altcraft import registry
from altcraft.domain.audit import Filter
from altcraft.web.control import create_app
from tests.lib.webpanel import Tenant, make_tenant, other_first, signin, token_of

pytestmark = pytest.mark.integration


@dataclass
class World:
    platform: object
    a: Tenant
    b: Tenant
    config: object = None
    senders: dict = None  # account id -> its sender's id
    triggers: dict = None  # account id -> its (inactive) trigger campaign's id
    webhooks: dict = None  # account id -> its webhook's id (with one failed message)
    scenarios: dict = None  # account id -> its (inactive) scenario's id
    abtests: dict = None  # account id -> its draft A/B campaign's id

    def profile_count(self, tenant: Tenant) -> int:
        return self.platform.profiles(tenant.account_id, tenant.db_ids[-1]).collection.count_documents({})

    def database_count(self, tenant: Tenant) -> int:
        return len(self.platform.databases(tenant.account_id).list())

    def segment_count(self, tenant: Tenant) -> int:
        return len(self.platform.segments(tenant.account_id).list())

    def segment_state(self, tenant: Tenant) -> tuple:
        doc = self.platform.segments(tenant.account_id).get(tenant.segment_ids[-1])
        return doc["name"], doc["condition"]

    def template_count(self, tenant: Tenant) -> int:
        return len(self.platform.templates(tenant.account_id).list())

    def import_count(self, tenant: Tenant) -> int:
        return len(self.platform.import_jobs(tenant.account_id).list(tenant.db_ids[-1]))

    def import_state(self, tenant: Tenant) -> tuple:
        doc = self.platform.import_jobs(tenant.account_id).get(tenant.db_ids[-1], tenant.import_ids[-1])
        return doc["state"], doc["run"]

    def profile_state(self, tenant: Tenant) -> tuple:
        doc = self.platform.profiles(tenant.account_id, tenant.db_ids[-1]).get(profile_id=tenant.profile_ids[-1])
        return doc["data"].get("first_name"), tuple(s["status"] for s in doc["subscriptions"])

    def test_sends(self, tenant: Tenant) -> int:
        """Messages waiting in the priority queue of the tenant's sender (nothing consumes it here)."""
        from altcraft.mta import envelope as mta_envelope
        from altcraft.stores.broker import Broker
        with Broker(self.config) as broker:
            return broker.queue_depth(mta_envelope.queue(self.senders[tenant.account_id], priority=True))

    def template_state(self, tenant: Tenant) -> tuple:
        doc = self.platform.templates(tenant.account_id).get(tenant.template_ids[-1])
        return doc["name"], doc["subject"], doc["html"], doc["text"]

    def campaign_count(self, tenant: Tenant) -> int:
        return len(self.platform.campaigns.list(tenant.account_id))

    def campaign_state(self, tenant: Tenant, index: int) -> str:
        return self.platform.campaigns.get(tenant.account_id, tenant.campaign_ids[index])["state"]

    def trigger_active(self, tenant: Tenant) -> bool:
        return self.platform.triggers.get(tenant.account_id, self.triggers[tenant.account_id])["active"]

    def trigger_count(self, tenant: Tenant) -> int:
        return len(self.platform.triggers.list(tenant.account_id))

    def webhook_count(self, tenant: Tenant) -> int:
        return len(self.platform.webhooks.list(tenant.account_id))

    def webhook_enabled(self, tenant: Tenant) -> bool:
        return self.platform.webhooks.get(tenant.account_id, self.webhooks[tenant.account_id])["enabled"]

    def scenario_state(self, tenant: Tenant) -> tuple:
        doc = self.platform.scenarios.get(tenant.account_id, self.scenarios[tenant.account_id])
        return doc["active"], doc["version"]

    def scenario_count(self, tenant: Tenant) -> int:
        return len(self.platform.scenarios.list(tenant.account_id))

    def webhook_entry_state(self, tenant: Tenant) -> str:
        return self.platform.webhook_outbox.collection.find_one(
            {"endpoint_id": self.webhooks[tenant.account_id]})["state"]

    def campaign_name(self, tenant: Tenant, index: int) -> str:
        return self.platform.campaigns.get(tenant.account_id, tenant.campaign_ids[index])["name"]


Url = Callable[[World, Tenant], str]


@dataclass
class Case:
    url: Url                                    # the route for a tenant's own ids
    foreign: bool = False                       # the URL carries ids (so B's ids must give 404)
    data: Callable[[World], dict] = lambda w: {}
    state: Callable[[World, Tenant], object] | None = None  # for changes: what they change
    draft: bool = False  # a POST that computes a draft and stores nothing (the scenario step editor)


def _db(w: World, t: Tenant) -> str:
    return f"/databases/{t.db_ids[-1]}"


def _profile(w: World, t: Tenant) -> str:
    return f"{_db(w, t)}/profiles/{t.profile_ids[0]}"


def _kept_profile(w: World, t: Tenant) -> str:
    return f"{_db(w, t)}/profiles/{t.profile_ids[-1]}"  # [0] is deleted by the profile_delete case


def _edit_profile(w: World) -> dict:
    import uuid
    return {"first_name": f"Olga {uuid.uuid4().hex[:6]}"}


def _new_profile(w: World) -> dict:
    import uuid
    return {"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "first_name": "Olga"}


def _new_database(w: World) -> dict:
    import uuid
    return {"name": f"new {uuid.uuid4().hex[:8]}", "key": "email"}


def _new_segment(w: World) -> dict:
    import uuid
    return {"name": f"seg {uuid.uuid4().hex[:8]}", "kind": "dynamic", "join": "and",
            "field_0": "first_name", "op_0": "eq", "value_0": "Anna"}


def _edit_segment(w: World) -> dict:
    import uuid
    return {"name": f"seg {uuid.uuid4().hex[:8]}", "join": "and", "field_0": "first_name", "op_0": "ne",
            "value_0": "Boris"}


def _new_abtest(w: World) -> dict:
    return {**_new_campaign(w), "variant_0_subject": "A", "variant_1_subject": "B", "test_share": "20",
            "wait_seconds": "3600", "metric": "opens"}


def _new_template(w: World) -> dict:
    import uuid
    return {"name": f"tpl {uuid.uuid4().hex[:8]}", "subject": "Hi {{ first_name }}",
            "html": "<p>Hi {{ first_name }}</p>", "text": ""}


def _new_upload(w: World) -> dict:
    import io
    import uuid
    return {"file": (io.BytesIO(f"email\nu-{uuid.uuid4().hex[:8]}@example.com\n".encode()), "people.csv")}


def _import(w: World, t: Tenant) -> str:
    return f"{_db(w, t)}/imports/{t.import_ids[-1]}"


def _template(w: World, t: Tenant) -> str:
    return f"/templates/{t.template_ids[-1]}"


def _campaign(w: World, t: Tenant, index: int = 0) -> str:
    return f"/campaigns/{t.campaign_ids[index]}"


def _new_campaign(w: World) -> dict:
    import uuid
    t = w.a
    return {"name": f"camp {uuid.uuid4().hex[:8]}", "db_id": t.db_ids[-1], "segment_id": t.segment_ids[-1],
            "template_id": t.template_ids[-1], "sender": f"s:{t.sender_id}", "resource_id": "1",
            "schedule": "at", "at": "2099-01-01T09:00"}


# the campaigns of make_tenant, by the transition each is in a state for (and a draft that
# is edited, cloned and, last, deleted)
CAMPAIGN_STATES = ("draft", "scheduled", "paused", "scheduled", "draft")
START, PAUSE, RESUME, CANCEL, SPARE = range(5)


def _transition(index: int, action: str) -> Case:
    return Case(lambda w, t: f"{_campaign(w, t, index)}/{action}", foreign=True,
                state=lambda w, t: w.campaign_state(t, index))


def _new_trigger(w: World) -> dict:
    t = w.a
    return {"name": "on paid", "kind": "event", "event": "order_paid", "db_id": t.db_ids[-1],
            "template_id": t.template_ids[-1], "sender": f"s:{t.sender_id}", "resource_id": "1", "delay": "0"}


def _trigger(w: World, t: Tenant) -> str:
    return f"/triggers/{w.triggers[t.account_id]}"


def _graph(w: World, t: Tenant) -> list:
    return [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "hello"},
            {"id": "hello", "type": "send", "template_id": t.template_ids[-1], "sender_id": w.senders[t.account_id],
             "next": "end"},
            {"id": "end", "type": "exit"}]


def _new_scenario(w: World) -> dict:
    import json
    return {"name": "welcome", "db_id": w.a.db_ids[-1], "reentry": "once", "nodes": json.dumps(_graph(w, w.a))}


def _scenario(w: World, t: Tenant) -> str:
    return f"/scenarios/{w.scenarios[t.account_id]}"


def _scenario_step(w: World) -> dict:
    import json
    return {"nodes": json.dumps(_graph(w, w.a)), "op": "apply", "s_id": "spare", "s_type": "exit", "s_was": ""}


def _webhook(w: World, t: Tenant) -> str:
    return f"/webhooks/{w.webhooks[t.account_id]}"


def _test_send(w: World) -> dict:
    return {"address": "qa@example.com", "sender_id": w.senders[w.a.account_id], "db_id": w.a.db_ids[-1],
            "profile": w.a.profile_ids[-1]}  # [0] is deleted by the profile_delete case


# (endpoint, method) -> Case. GET cases are pages; POST cases are changes.
CASES: dict[tuple[str, str], Case] = {
    ("root", "GET"): Case(lambda w, t: "/"),
    ("control.dashboard", "GET"): Case(lambda w, t: "/dashboard"),
    ("control.databases", "GET"): Case(lambda w, t: "/databases"),
    ("control.databases", "POST"): Case(lambda w, t: "/databases", data=_new_database,
                                        state=lambda w, t: w.database_count(t)),
    ("control.profiles", "GET"): Case(lambda w, t: f"{_db(w, t)}/profiles", foreign=True),
    ("control.profile_add", "POST"): Case(lambda w, t: f"{_db(w, t)}/profiles", foreign=True,
                                          data=_new_profile, state=lambda w, t: w.profile_count(t)),
    ("control.profile", "GET"): Case(_profile, foreign=True),
    ("control.profile_delete_confirm", "GET"): Case(lambda w, t: f"{_profile(w, t)}/delete", foreign=True),
    ("control.profile_delete", "POST"): Case(lambda w, t: f"{_profile(w, t)}/delete", foreign=True,
                                             state=lambda w, t: w.profile_count(t)),
    ("control.profile_edit", "POST"): Case(_kept_profile, foreign=True, data=_edit_profile,
                                           state=lambda w, t: w.profile_state(t)),
    ("control.profile_unsubscribe", "POST"): Case(lambda w, t: f"{_kept_profile(w, t)}/unsubscribe", foreign=True,
                                                  data=lambda w: {"resource_id": "1", "channel": "email"},
                                                  state=lambda w, t: w.profile_state(t)),
    ("control.segments", "GET"): Case(lambda w, t: "/segments"),
    ("control.segment_new", "GET"): Case(lambda w, t: f"{_db(w, t)}/segments/new", foreign=True),
    ("control.segment_add", "POST"): Case(lambda w, t: f"{_db(w, t)}/segments/new", foreign=True,
                                          data=_new_segment, state=lambda w, t: w.segment_count(t)),
    ("control.segment_count", "GET"): Case(
        lambda w, t: f"{_db(w, t)}/segments/count?field_0=first_name&op_0=eq&value_0=Anna", foreign=True),
    ("control.segment", "GET"): Case(lambda w, t: f"/segments/{t.segment_ids[-1]}", foreign=True),
    ("control.segment_builder", "GET"): Case(lambda w, t: f"{_db(w, t)}/segments/builder?edit=add_group:",
                                             foreign=True),
    ("control.segment_edit", "GET"): Case(lambda w, t: f"/segments/{t.segment_ids[-1]}/edit", foreign=True),
    ("control.segment_edit", "POST"): Case(lambda w, t: f"/segments/{t.segment_ids[-1]}/edit", foreign=True,
                                           data=_edit_segment, state=lambda w, t: w.segment_state(t)),
    ("control.abtests", "GET"): Case(lambda w, t: "/abtests"),
    ("control.abtest_new", "GET"): Case(lambda w, t: f"/abtests/new?db_id={t.db_ids[-1]}", foreign=True),
    ("control.abtest_new", "POST"): Case(lambda w, t: "/abtests/new", data=_new_abtest,
                                         state=lambda w, t: w.campaign_count(t)),
    ("control.abtest", "GET"): Case(lambda w, t: f"/abtests/{w.abtests[t.account_id]}", foreign=True),
    ("control.abtest_report", "GET"): Case(lambda w, t: f"/abtests/{w.abtests[t.account_id]}/report", foreign=True),
    ("control.templates", "GET"): Case(lambda w, t: "/templates"),
    ("control.template_new", "GET"): Case(lambda w, t: "/templates/new"),
    ("control.template_new", "POST"): Case(lambda w, t: "/templates/new", data=_new_template,
                                           state=lambda w, t: w.template_count(t)),
    ("control.template", "GET"): Case(_template, foreign=True),
    ("control.template", "POST"): Case(_template, foreign=True, data=_new_template,
                                       state=lambda w, t: w.template_state(t)),
    ("control.imports", "GET"): Case(lambda w, t: f"{_db(w, t)}/imports", foreign=True),
    ("control.import_upload", "POST"): Case(lambda w, t: f"{_db(w, t)}/imports", foreign=True,
                                            data=_new_upload, state=lambda w, t: w.import_count(t)),
    ("control.import_job", "GET"): Case(_import, foreign=True),
    ("control.import_status", "GET"): Case(lambda w, t: f"{_import(w, t)}/status", foreign=True),
    ("control.import_errors", "GET"): Case(lambda w, t: f"{_import(w, t)}/errors.csv", foreign=True),
    # the check queues the job, then the import replaces the queued check
    ("control.import_check", "POST"): Case(lambda w, t: f"{_import(w, t)}/check", foreign=True,
                                           data=lambda w: {"map_0": "email", "map_1": "first_name"},
                                           state=lambda w, t: w.import_state(t)),
    ("control.import_start", "POST"): Case(lambda w, t: f"{_import(w, t)}/start", foreign=True,
                                           state=lambda w, t: w.import_state(t)),
    ("control.template_preview", "GET"): Case(
        lambda w, t: f"{_template(w, t)}/preview?db_id={t.db_ids[-1]}&profile={t.profile_ids[0]}",
        foreign=True),
    ("control.campaigns", "GET"): Case(lambda w, t: "/campaigns"),
    ("control.campaign_new", "GET"): Case(lambda w, t: f"/campaigns/new?db_id={t.db_ids[-1]}", foreign=True),
    ("control.campaign_new", "POST"): Case(lambda w, t: "/campaigns/new", data=_new_campaign,
                                           state=lambda w, t: w.campaign_count(t)),
    ("control.campaign", "GET"): Case(_campaign, foreign=True),
    ("control.campaign_start", "POST"): _transition(START, "start"),
    ("control.campaign_pause", "POST"): _transition(PAUSE, "pause"),
    ("control.campaign_resume", "POST"): _transition(RESUME, "resume"),
    ("control.campaign_cancel", "POST"): _transition(CANCEL, "cancel"),
    ("control.campaign_edit", "GET"): Case(lambda w, t: f"{_campaign(w, t, SPARE)}/edit", foreign=True),
    ("control.campaign_edit", "POST"): Case(lambda w, t: f"{_campaign(w, t, SPARE)}/edit", foreign=True,
                                            data=_new_campaign, state=lambda w, t: w.campaign_name(t, SPARE)),
    ("control.campaign_clone", "POST"): Case(lambda w, t: f"{_campaign(w, t, SPARE)}/clone", foreign=True,
                                             state=lambda w, t: w.campaign_count(t)),
    ("control.campaign_delete_confirm", "GET"): Case(lambda w, t: f"{_campaign(w, t, SPARE)}/delete", foreign=True),
    # after every other case that uses the spare draft
    ("control.campaign_delete", "POST"): Case(lambda w, t: f"{_campaign(w, t, SPARE)}/delete", foreign=True,
                                              state=lambda w, t: w.campaign_count(t)),
    ("control.campaign_report", "GET"): Case(lambda w, t: f"{_campaign(w, t)}/report", foreign=True),
    ("control.campaign_report_csv", "GET"): Case(lambda w, t: f"{_campaign(w, t)}/report.csv", foreign=True),
    ("control.template_test_send", "POST"): Case(lambda w, t: f"{_template(w, t)}/test-send", foreign=True,
                                                 data=_test_send, state=lambda w, t: w.test_sends(t)),
    ("control.triggers", "GET"): Case(lambda w, t: "/triggers"),
    ("control.trigger_new", "GET"): Case(lambda w, t: "/triggers/new"),
    ("control.trigger_new", "POST"): Case(lambda w, t: "/triggers/new", data=_new_trigger,
                                          state=lambda w, t: w.trigger_count(t)),
    ("control.trigger", "GET"): Case(_trigger, foreign=True),
    ("control.trigger_activate", "POST"): Case(lambda w, t: f"{_trigger(w, t)}/activate", foreign=True,
                                               state=lambda w, t: w.trigger_active(t)),
    ("control.trigger_deactivate", "POST"): Case(lambda w, t: f"{_trigger(w, t)}/deactivate", foreign=True,
                                                 state=lambda w, t: w.trigger_active(t)),
    ("control.scenarios", "GET"): Case(lambda w, t: "/scenarios"),
    ("control.scenario_new", "GET"): Case(lambda w, t: "/scenarios/new"),
    ("control.scenario_new", "POST"): Case(lambda w, t: "/scenarios/new", data=_new_scenario,
                                           state=lambda w, t: w.scenario_count(t)),
    ("control.scenario", "GET"): Case(_scenario, foreign=True),
    ("control.scenario", "POST"): Case(_scenario, foreign=True, data=_new_scenario,
                                       state=lambda w, t: w.scenario_state(t)),
    ("control.scenario_steps", "POST"): Case(lambda w, t: f"{_scenario(w, t)}/steps", foreign=True,
                                             data=_scenario_step, state=lambda w, t: w.scenario_state(t), draft=True),
    ("control.scenario_activate", "POST"): Case(lambda w, t: f"{_scenario(w, t)}/activate", foreign=True,
                                                state=lambda w, t: w.scenario_state(t)),
    ("control.scenario_deactivate", "POST"): Case(lambda w, t: f"{_scenario(w, t)}/deactivate", foreign=True,
                                                  state=lambda w, t: w.scenario_state(t)),
    ("control.webhooks", "GET"): Case(lambda w, t: "/webhooks"),
    ("control.webhook_new", "GET"): Case(lambda w, t: "/webhooks/new"),
    ("control.webhook_new", "POST"): Case(lambda w, t: "/webhooks/new", data=lambda w: {"url": "http://192.0.32.10/hook"},
                                          state=lambda w, t: w.webhook_count(t)),
    ("control.webhook", "GET"): Case(_webhook, foreign=True),
    ("control.webhook_disable", "POST"): Case(lambda w, t: f"{_webhook(w, t)}/disable", foreign=True,
                                              state=lambda w, t: w.webhook_enabled(t)),
    ("control.webhook_enable", "POST"): Case(lambda w, t: f"{_webhook(w, t)}/enable", foreign=True,
                                             state=lambda w, t: w.webhook_enabled(t)),
    ("control.webhook_replay", "POST"): Case(lambda w, t: f"{_webhook(w, t)}/replay", foreign=True,
                                             state=lambda w, t: w.webhook_entry_state(t)),
    ("control.webhook_delete_confirm", "GET"): Case(lambda w, t: f"{_webhook(w, t)}/delete", foreign=True),
    ("control.webhook_delete", "POST"): Case(lambda w, t: f"{_webhook(w, t)}/delete", foreign=True,
                                             state=lambda w, t: w.webhook_count(t)),
    ("control.template_preview_frame", "GET"): Case(
        lambda w, t: f"{_template(w, t)}/preview/frame?db_id={t.db_ids[-1]}&profile={t.profile_ids[0]}",
        foreign=True),
}
# Responses that are a message's markup, not a panel page: served under the preview's own
# CSP (test_preview_frame_has_its_own_policy), not the panel's.
FRAMES = {("control.template_preview_frame", "GET")}
# Routes outside the account area, each tested on its own: the process's health, readiness
# and metrics (tests/integration/test_webcontrol_process.py), the vendored and own static
# files, sign-in and sign-out (below and test_webcontrol_signin.py).
SERVICE = {("health", "GET"), ("ready", "GET"), ("metrics", "GET"), ("web.static", "GET"),
           ("web.signin", "GET"), ("web.signin", "POST"), ("web.signout", "POST"),
           # a user's own password: read-only users may change it too (test_webcontrol_signin.py)
           ("web.password", "GET"), ("web.password", "POST")}

PAGES = {k: c for k, c in CASES.items() if k[1] == "GET" and k not in FRAMES}
CHANGES = {k: c for k, c in CASES.items() if k[1] != "GET"}
NONCE = re.compile(r"'nonce-([A-Za-z0-9_-]+)'")


def _routes(app) -> set[tuple[str, str]]:
    return {(rule.endpoint, method) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


@pytest.fixture
def app(config):
    return create_app(config, registry.get("webcontrol"))


@pytest.fixture
def world(platform, config) -> World:
    # B has more databases than A ever gets here, so B's last db id does not exist in A
    # and more segments and templates, so B's last ids do not exist in A either
    import random
    import uuid

    from altcraft.mta import envelope as mta_envelope
    from altcraft.stores.broker import Broker
    # campaign ids are global: B's are simply not A's
    world = World(platform, make_tenant(platform, databases=1, segments=1, templates=1, campaigns=CAMPAIGN_STATES,
                              imports=1),
                  make_tenant(platform, databases=6, segments=3, templates=3, campaigns=CAMPAIGN_STATES,
                              imports=1), config, {}, {}, {}, {}, {})
    # senders with ids no other test uses: their queues, in the harness's shared vhost, are
    # this test's alone (a vhost of its own costs seconds per test)
    queues = []
    platform.control.counters.update_one({"_id": "senders"}, {"$set": {"seq": random.randrange(10**8, 10**9)}},
                                         upsert=True)
    for tenant in (world.a, world.b):
        platform.profiles(tenant.account_id, tenant.db_ids[-1]).set_subscription(
            tenant.profile_ids[-1], 1, "email", "subscribed")
        sender = platform.senders.save(name=f"s{tenant.account_id}",
                                       from_email="news@shop.example", dkim_algorithm="none")
        platform.senders.assign(sender["id"], tenant.account_id)
        world.senders[tenant.account_id] = sender["id"]
        world.triggers[tenant.account_id] = platform.triggers.add(
            tenant.account_id, "t", tenant.db_ids[-1], tenant.template_ids[-1], sender_id=sender["id"],
            trigger={"type": "event", "name": "order_paid"}, active=False)["id"]
        hook = platform.webhooks.add(tenant.account_id, "http://192.0.32.10/hook", events=["custom.#"])
        world.webhooks[tenant.account_id] = hook["id"]
        entry = platform.webhook_outbox.entry(tenant.account_id, hook["id"], uuid.uuid4().hex, "custom.event", b"{}")
        platform.webhook_outbox.put([{**entry, "state": "failed"}])
        world.scenarios[tenant.account_id] = platform.scenarios.add(
            tenant.account_id, "s", tenant.db_ids[-1], _graph(world, tenant))["id"]
        world.abtests[tenant.account_id] = platform.campaigns.add(
            tenant.account_id, "ab", tenant.db_ids[-1], tenant.segment_ids[-1], tenant.template_ids[-1],
            sender_id=sender["id"], schedule={"type": "once", "at": "2099-01-01T00:00:00Z"},
            ab={"variants": [{"subject": "A"}, {"subject": "B"}], "test_share": 0.2, "wait_seconds": 3600})["id"]
        queues.append(mta_envelope.queue(sender["id"], priority=True))
    with Broker(config) as broker:
        for queue in queues:
            broker.declare_durable_queue(queue)
    yield world
    with Broker(config) as broker:
        for queue in queues:
            broker.channel.queue_delete(queue)


def test_every_route_has_a_case(app):
    routes = _routes(app)
    missing = routes - set(CASES) - SERVICE
    stale = (set(CASES) | SERVICE) - routes
    assert not missing, f"routes without a security case in CASES: {sorted(missing)}"
    assert not stale, f"cases for routes that do not exist: {sorted(stale)}"


def test_anonymous_is_sent_to_sign_in_and_changes_nothing(app, world):
    client = app.test_client()
    token = token_of(client.get("/signin").data)  # a real anonymous session with its token
    for (endpoint, method), case in CASES.items():
        url = case.url(world, world.a)
        before = case.state(world, world.a) if case.state else None
        response = client.open(url, method=method, data={**case.data(world), "csrf_token": token})
        assert response.status_code == 302, (endpoint, method, response.status_code)
        assert response.headers["Location"].startswith("/signin"), (endpoint, response.headers["Location"])
        if case.state:
            assert case.state(world, world.a) == before, f"{endpoint}: an anonymous request changed data"


def test_change_without_csrf_token_is_refused_and_changes_nothing(app, world):
    client = app.test_client()
    good = signin(client, world.a.writer)
    for (endpoint, method), case in CHANGES.items():
        for label, extra, headers in (("no token", {}, {}),
                                      ("wrong token", {"csrf_token": other_first(good)}, {}),
                                      ("wrong header", {}, {"X-CSRF-Token": other_first(good[::-1])[::-1]})):
            before = case.state(world, world.a)
            response = client.open(case.url(world, world.a), method=method,
                                   data={**case.data(world), **extra}, headers=headers)
            assert response.status_code == 400, (endpoint, label, response.status_code)
            assert case.state(world, world.a) == before, f"{endpoint} ({label}) changed data"


def test_writer_changes_with_token_in_form_or_header(app, world):
    """The other side of the refusals above: with the token each change is made, so the
    state probes do see changes."""
    client = app.test_client()
    token = signin(client, world.a.writer)
    journal = world.platform.journal
    for index, ((endpoint, method), case) in enumerate(CHANGES.items()):
        before, head = case.state(world, world.a), journal.head()
        as_header = index % 2 == 1  # htmx sends the token as a header
        response = client.open(case.url(world, world.a), method=method,
                               data=case.data(world) if as_header else {**case.data(world), "csrf_token": token},
                               headers={"X-CSRF-Token": token, "HX-Request": "true"} if as_header else {})
        if case.draft:  # computed and shown: nothing stored, nothing journaled
            assert response.status_code == 200 and 'data-testid="step-spare"' in response.data.decode(), endpoint
            assert case.state(world, world.a) == before and journal.head() == head, endpoint
            continue
        assert response.status_code in (200, 302), (endpoint, response.status_code, re.findall(r"class=\"error[^>]*>([^<]*)", response.data.decode()))
        assert case.state(world, world.a) != before, f"{endpoint}: the change was not made"
        # each change is exactly one audit entry, in the user's account, under the user's login
        assert journal.head() == head + 1, f"{endpoint}: {journal.head() - head} journal entries, not one"
        entry, = journal.list(Filter(limit=1))
        assert (entry["action"], entry["channel"], entry["actor_kind"], entry["actor_name"], entry["account_id"]) == \
            (endpoint, "webcontrol", "user", world.a.writer, world.a.account_id), entry


def test_another_accounts_ids_are_not_found(app, world):
    client = app.test_client()
    token = signin(client, world.a.writer)
    checked = 0
    for (endpoint, method), case in CASES.items():
        if not case.foreign:
            continue
        before = case.state(world, world.b) if case.state else None
        response = client.open(case.url(world, world.b), method=method,
                               data={**case.data(world), "csrf_token": token})
        assert response.status_code == 404, (endpoint, method, response.status_code)
        if case.state:
            assert case.state(world, world.b) == before, f"{endpoint}: account A changed account B's data"
        checked += 1
    # A's own database with B's profile id: still B's profile is not found
    response = client.get(f"/databases/{world.a.db_ids[-1]}/profiles/{world.b.profile_ids[0]}")
    assert response.status_code == 404
    # and B's import job under A's own database
    for suffix in ("", "/status", "/errors.csv"):
        response = client.get(f"/databases/{world.a.db_ids[-1]}/imports/{world.b.import_ids[-1]}{suffix}")
        assert response.status_code == 404, suffix
    before = world.platform.import_jobs(world.b.account_id).get(world.b.db_ids[-1], world.b.import_ids[-1])["state"]
    response = client.post(f"/databases/{world.a.db_ids[-1]}/imports/{world.b.import_ids[-1]}/start",
                           data={"csrf_token": token})
    assert response.status_code == 404
    assert world.platform.import_jobs(world.b.account_id).get(world.b.db_ids[-1], world.b.import_ids[-1])["state"] == before
    assert checked == sum(1 for c in CASES.values() if c.foreign)


def test_read_only_user_gets_403_on_every_change(app, world):
    client = app.test_client()
    token = signin(client, world.a.reader)
    for (endpoint, method), case in CHANGES.items():
        before = case.state(world, world.a)
        response = client.open(case.url(world, world.a), method=method,
                               data={**case.data(world), "csrf_token": token})
        assert response.status_code == 403, (endpoint, response.status_code)
        assert case.state(world, world.a) == before, f"{endpoint}: a read-only user changed data"
    for (endpoint, _), case in {**PAGES, **{k: CASES[k] for k in FRAMES}}.items():  # and reads everything
        response = client.get(case.url(world, world.a), follow_redirects=True)
        assert response.status_code == 200, (endpoint, response.status_code)


def _check_csp(response, endpoint: str) -> str:
    policy = response.headers.get("Content-Security-Policy", "")
    assert policy, f"{endpoint}: no Content-Security-Policy"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, endpoint
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, endpoint
    (nonce,) = set(NONCE.findall(policy))
    html = response.data.decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    for tag in scripts:
        if 'type="application/json"' not in tag:
            assert f'nonce="{nonce}"' in tag, f"{endpoint}: a script without this response's nonce: {tag}"
    # a preview's HTML is loaded from its own route (FRAMES) into a sandbox without scripts;
    # no page inlines it (no srcdoc)
    for frame in re.findall(r"<iframe\b[^>]*>", html):
        assert re.search(r'\ssandbox(\s|>|="")', frame) and "allow-scripts" not in frame, frame
    assert "srcdoc" not in html, f"{endpoint}: markup inlined into a frame"
    assert not re.search(r"\son[a-z]+=", html), f"{endpoint}: an inline event handler"
    assert not re.search(r"\sstyle=", html), f"{endpoint}: an inline style attribute"
    return nonce


def test_csp_on_every_page_with_a_fresh_nonce(app, world):
    client = app.test_client()
    signin_page = client.get("/signin")
    _check_csp(signin_page, "web.signin")
    signin(client, world.a.writer)
    for (endpoint, _), case in PAGES.items():
        first = client.get(case.url(world, world.a), follow_redirects=True)
        second = client.get(case.url(world, world.a), follow_redirects=True)
        assert first.status_code == 200, endpoint
        assert _check_csp(first, endpoint) != _check_csp(second, endpoint), f"{endpoint}: the nonce repeats"
    # error pages and redirects too
    missing = client.get("/databases/999999/profiles")
    assert missing.status_code == 404 and missing.headers.get("Content-Security-Policy")
    assert client.get("/").headers.get("Content-Security-Policy")


def test_preview_frame_has_its_own_policy(app, world):
    """The preview's HTML is the template's: its styles apply, nothing runs, only the panel
    frames it; the page around it keeps the panel's strict policy."""
    from altcraft.web.security import PREVIEW_POLICY
    client = app.test_client()
    signin(client, world.a.writer)
    for key in FRAMES:
        response = client.get(CASES[key].url(world, world.a))
        assert response.status_code == 200 and response.mimetype == "text/html", key
        assert response.headers["Content-Security-Policy"] == PREVIEW_POLICY, key
        assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
        assert b"<p>Hello Anna</p>" in response.data
    outer = client.get(CASES[("control.template_preview", "GET")].url(world, world.a))
    _check_csp(outer, "control.template_preview")
    assert "/preview/frame?" in outer.data.decode()
    # without a profile: a plain error under the same policy, never a panel page
    bad = client.get(f"/templates/{world.a.template_ids[-1]}/preview/frame")
    assert bad.status_code == 400 and bad.headers["Content-Security-Policy"] == PREVIEW_POLICY


def test_session_cookie_flags_and_sign_out(app, world):
    client = app.test_client()
    page = client.get("/signin")
    response = client.post("/signin", data={"login": world.a.writer, "password": "Quartz-Meadow-Lantern-42",
                                            "csrf_token": token_of(page.data)})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    token = token_of(client.get("/databases").data)
    # behind nginx with TLS the cookie is Secure
    secure = client.get("/databases", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in secure.headers["Set-Cookie"]
    assert client.post("/signout", data={}).status_code == 400  # sign-out needs its token too
    assert client.get("/databases").status_code == 200
    assert client.post("/signout", data={"csrf_token": token}).status_code == 302
    assert client.get("/databases").status_code == 302


def test_next_after_sign_in_stays_on_this_site(app, world):
    client = app.test_client()
    for target, expected in (("/databases", "/databases"), ("//evil.example/x", "/dashboard"),
                             ("https://evil.example/", "/dashboard")):
        client.post("/signout", data={"csrf_token": token_of(client.get("/signin").data)})
        page = client.get("/signin")
        response = client.post(f"/signin?next={target}", data={
            "login": world.a.writer, "password": "Quartz-Meadow-Lantern-42", "csrf_token": token_of(page.data)})
        assert response.headers["Location"] == expected, target
