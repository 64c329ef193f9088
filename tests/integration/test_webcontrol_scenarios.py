"""webcontrol's scenario pages on the real stores: a graph refused names the node and its
field and stores nothing; a saved one is drawn (every node, every edge) with the counts the
step log gives; saving new steps makes a new version; activation switches it."""

from __future__ import annotations

import html
import json
import re

import pytest

from altcraft import registry
from altcraft.web.control import create_app
from altcraft.wiring import Platform
from tests.lib.harness import migrated_config
from tests.lib.webpanel import make_tenant, signin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def signed_in(harness, tmp_path_factory):
    platform = Platform(migrated_config(harness, tmp_path_factory.mktemp("akd")))
    tenant = make_tenant(platform, profiles=1, segments=1, templates=1, campaigns=("draft",))  # and a sender
    client = create_app(platform.config, registry.get("webcontrol")).test_client()
    yield platform, tenant, client, signin(client, tenant.writer)
    platform.close()


def test_a_scenario_is_checked_drawn_counted_versioned_and_switched(signed_in):
    platform, tenant, client, token = signed_in
    graph = [{"id": "start", "type": "entry", "trigger": {"type": "api"}, "next": "hello"},
             {"id": "hello", "type": "send", "template_id": tenant.template_ids[-1], "sender_id": tenant.sender_id,
              "next": "seen"},
             {"id": "seen", "type": "branch", "condition": {"opened": "hello"}, "yes": "end", "no": "again"},
             {"id": "again", "type": "send", "template_id": tenant.template_ids[-1], "sender_id": tenant.sender_id,
              "next": "end"},
             {"id": "end", "type": "exit"}]
    form = {"csrf_token": token, "name": "Welcome", "db_id": tenant.db_ids[-1], "reentry": "once"}
    for nodes, message in (("[{", "nodes: not JSON: Expecting property name enclosed in double quotes: line 1 column 3 (char 2)"),
                           (json.dumps(graph[:2] + graph[3:]), "node 'hello'.next: no node 'seen' (dangling edge)"),
                           (json.dumps([graph[0], {**graph[1], "template_id": 999999}, *graph[2:]]),
                            "node 'hello': template 999999 not found")):
        response = client.post("/scenarios/new", data={**form, "nodes": nodes})
        assert response.status_code in (400, 404), nodes
        shown = re.findall(r'data-testid="form-error">([^<]*)', response.data.decode())
        assert [html.unescape(m) for m in shown] == [message], (message, shown)
    assert platform.scenarios.list(tenant.account_id) == [], "a refused graph was stored"

    response = client.post("/scenarios/new", data={**form, "nodes": json.dumps(graph)})
    assert response.status_code == 302
    scenario_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert 'data-testid="scenario-activate"' in client.get(f"/scenarios/{scenario_id}").data.decode()
    client.post(f"/scenarios/{scenario_id}/activate", data={"csrf_token": token})
    assert platform.scenarios.get(tenant.account_id, scenario_id)["active"] is True
    assert f'data-testid="scenario-state-{scenario_id}">active<' in client.get("/scenarios").data.decode()
    platform.scenarios.enter(platform.scenarios.get(tenant.account_id, scenario_id), "p1", "api:1", {})
    page = client.get(f"/scenarios/{scenario_id}").data.decode()
    for node in graph:  # every node drawn, with its counts
        assert f'data-testid="node-{node["id"]}"' in page
    assert page.count("<line ") == 5  # start>hello, hello>seen, seen>end (yes), seen>again (no), again>end
    assert 'data-testid="entered-start">1<' in page and 'data-testid="entered-hello">0<' in page

    graph[3]["next"] = "hello"  # a loop: allowed (max_visits ends it), drawn as a line back up
    response = client.post(f"/scenarios/{scenario_id}", data={**form, "nodes": json.dumps(graph)})
    assert response.status_code == 302
    stored = platform.scenarios.get(tenant.account_id, scenario_id)
    assert stored["version"] == 2 and stored["nodes"][3]["next"] == "hello"
    assert 'stroke-dasharray' in client.get(f"/scenarios/{scenario_id}").data.decode()
    client.post(f"/scenarios/{scenario_id}/deactivate", data={"csrf_token": token})
    assert platform.scenarios.get(tenant.account_id, scenario_id)["active"] is False


def _draft(response) -> list:
    """The draft the editor fragment carries (its hidden `nodes`)."""
    value = re.search(r'name="nodes" value="([^"]*)"', response.data.decode())[1]
    return json.loads(html.unescape(value))


def _step_errors(response, node_id: str) -> list[str]:
    return [html.unescape(m) for m in
            re.findall(rf'data-testid="step-error-{re.escape(node_id)}">([^<]*)', response.data.decode())]


def test_the_step_editor_changes_a_draft_checks_it_as_a_save_does_and_saves_a_version(signed_in):
    """Each action stores nothing; each change is checked by the domain and a refusal shows
    under its step; Save stores the draft as a new version; a graph saved through the API
    opens in the step forms and applies back unchanged."""
    from altcraft.web.control.scenario_form import to_form
    from altcraft.web.control.scenario_pages import STARTER
    platform, tenant, client, token = signed_in
    response = client.post("/scenarios/new", data={"csrf_token": token, "name": "Steps", "db_id": tenant.db_ids[-1],
                                                   "reentry": "once", "nodes": json.dumps(STARTER)})
    assert response.status_code == 302, response.data.decode()[-2000:]
    scenario_id = int(response.headers["Location"].rsplit("/", 1)[1])
    steps, hx = f"/scenarios/{scenario_id}/steps", {"HX-Request": "true"}
    stored = platform.scenarios.get(tenant.account_id, scenario_id)
    assert [n["id"] for n in stored["nodes"]] == ["start", "end"]

    def act(nodes, **form):
        return client.post(steps, data={"csrf_token": token, "nodes": json.dumps(nodes), **form}, headers=hx)

    opened = act(stored["nodes"], op="add", new_type="send")
    assert 'data-testid="step-form"' in opened.data.decode() and 'value="send_1"' in opened.data.decode()
    send = {"s_id": "send_1", "s_type": "send", "s_was": "", "s_template_id": "999999",
            "s_sender": f"s:{tenant.sender_id}", "s_after": "start"}
    refused = act(stored["nodes"], op="apply", **send)
    draft = _draft(refused)
    assert [(n["id"], n.get("next")) for n in draft] == [("start", "send_1"), ("end", None), ("send_1", "end")]
    assert _step_errors(refused, "send_1") == ["Step 3: node 'send_1': template 999999 not found"]
    # and its form opens again with the refusal under the field it concerns
    assert re.search(r'data-testid="field-error-s_template_id">node &#39;send_1&#39;: template 999999 not found',
                     refused.data.decode())
    assert 'data-testid="node-send_1"' in refused.data.decode()  # drawn at once
    fixed = act(draft, op="apply", **{**send, "s_was": "send_1", "s_next": "end", "s_template_id": str(tenant.template_ids[-1])})
    draft = _draft(fixed)
    assert 'class="error' not in fixed.data.decode() and fixed.data.decode().count("<line ") == 2

    # a choice inside a step form (how a profile enters) brings that choice's fields
    entry = act(draft, op="edit:start").data.decode()
    assert 'name="s_trigger"' in entry and 'hx-vals=\'{"op": "refresh"}\'' in entry and 'name="s_segment_id"' not in entry
    refreshed = act(draft, op="refresh", **{**to_form(draft[0]), "s_was": "start", "s_trigger": "segment"}).data.decode()
    assert 'name="s_segment_id"' in refreshed and f'<option value="{tenant.segment_ids[-1]}">' in refreshed

    # a dangling edge and an unreachable step, each under its step
    dangling = act(draft, op="delete:end")
    assert _step_errors(dangling, "send_1") == ["Step 2: node 'send_1'.next: no node 'end' (dangling edge)"]
    orphan = act(draft, op="apply", s_id="spare", s_type="exit", s_was="")
    assert _step_errors(orphan, "spare") == ["Step 4: node 'spare': not reachable from the entry"]
    unreadable = act(draft, op="apply", s_id="pause", s_type="wait", s_was="", s_wait="seconds", s_amount="three")
    assert re.search(r'data-testid="field-error-s_amount">node &#39;pause&#39;.seconds: a whole number',
                     unreadable.data.decode())
    assert _draft(unreadable) == draft  # the draft is kept as it was
    assert platform.scenarios.get(tenant.account_id, scenario_id)["version"] == 1, "an editor action stored"

    wait = act(draft, op="apply", s_id="pause", s_type="wait", s_was="", s_wait="seconds", s_amount="3",
               s_unit="days", s_after="send_1")
    draft = _draft(wait)
    assert 'class="error' not in wait.data.decode()
    saved = client.post(f"/scenarios/{scenario_id}", data={"csrf_token": token, "nodes": json.dumps(draft),
                                                           "editor": "steps"})
    assert saved.status_code == 302
    stored = platform.scenarios.get(tenant.account_id, scenario_id)
    assert stored["version"] == 2 and stored["name"] == "Steps"
    assert [(n["id"], n.get("next")) for n in stored["nodes"]] == \
        [("start", "send_1"), ("end", None), ("send_1", "pause"), ("pause", "end")]
    assert stored["nodes"][3]["seconds"] == 3 * 86400
    # a refused save from the editor keeps the draft there, the refusal under its step
    bad = [*stored["nodes"][:3], {**stored["nodes"][3], "next": "gone"}]
    refused = client.post(f"/scenarios/{scenario_id}", data={"csrf_token": token, "nodes": json.dumps(bad),
                                                             "editor": "steps"})
    assert refused.status_code == 400 and _draft(refused) == bad
    assert _step_errors(refused, "pause") == ["Step 4: node 'pause'.next: no node 'gone' (dangling edge)"]

    # round trip: every step of the stored graph opened in its form and applied as it is
    nodes = stored["nodes"]
    for node in nodes:
        form = to_form(node)
        assert f'value="{node["id"]}"' in act(nodes, op=f"edit:{node['id']}").data.decode()
        nodes = _draft(act(nodes, op="apply", **form, s_was=node["id"]))
    assert nodes == stored["nodes"]
